"""``shadow tune``: hyperparameter search (Optuna TPE + median pruning) scored by walk-forward
validation, locally or on a Ray cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from bot.commands.common import ConfigOption, console
from config.settings import load_settings
from trainer.cli import INTERRUPTED_EXIT_CODE, Backend, RayAddress, Workers, configure_logging

TOP_TRIALS = 10


def tune_command(
    config: ConfigOption = None,
    data: Annotated[Optional[Path], typer.Option(help="candle CSV to tune on (default: fetch \\[train] symbol "
                                                      "from Bybit)")] = None,
    symbol: Annotated[Optional[str], typer.Option(help="ccxt symbol (default: \\[train] symbol)")] = None,
    timeframe: Annotated[Optional[str], typer.Option(help="candle timeframe (default: \\[train] timeframe)")] = None,
    num_candles: Annotated[Optional[int], typer.Option(help="latest candles to use, test slice included")] = None,
    trials: Annotated[Optional[int], typer.Option("--trials", help="trials to run (default: 20)")] = None,
    timesteps: Annotated[Optional[int], typer.Option(help="PPO timesteps per fold of a trial (default: 20000)")] = None,
    folds: Annotated[Optional[int], typer.Option(help="walk-forward folds per trial (default: 3)")] = None,
    fold_train_candles: Annotated[Optional[int], typer.Option(help="candles per fold's training window (default: "
                                                                    "all that fit)")] = None,
    fold_validation_candles: Annotated[Optional[int], typer.Option(help="candles per fold's validation slice "
                                                                         "(default: \\[train] validation_fraction "
                                                                         "split among the folds)")] = None,
    objective: Annotated[Optional[str], typer.Option(help="fold score: return or sharpe (default: return)")] = None,
    study_name: Annotated[Optional[str], typer.Option(help="Optuna study name (default: shadow)")] = None,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL (default: sqlite in --out)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="output folder (default: tune)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="TPE sampler seed (default: 0)")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="start no new trial after this many seconds")] = None,
    backend: Backend = None,
    workers: Workers = None,
    ray_address: RayAddress = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="live table of trials")] = True,
) -> None:
    """Search PPO hyperparameters, scored by walk-forward validation; the test slice is never used.

    Writes trials.csv, summary.json, summary.png and best.toml (for shadow train --config) to --out;
    the study lives in an Optuna storage (SQLite by default) and a rerun continues it.
    """
    tune_flags = {"n_trials": trials, "timesteps": timesteps, "folds": folds, "objective": objective,
                  "fold_train_candles": fold_train_candles, "fold_validation_candles": fold_validation_candles,
                  "study_name": study_name, "storage": storage, "out_dir": out, "seed": seed, "timeout_s": timeout}
    train_flags = {"data": data, "symbol": symbol, "timeframe": timeframe, "num_candles": num_candles,
                   "progress": False}
    compute_flags = {"backend": backend, "workers": workers, "ray_address": ray_address}
    settings = load_settings(config, **{name: given for name, values in
                                        (("tune", tune_flags), ("train", train_flags), ("compute", compute_flags))
                                        if (given := {k: v for k, v in values.items() if v is not None})})
    configure_logging()
    from trainer.jobs.backends import make_backend
    from trainer.jobs.board import Board, live
    from trainer.tuning.search import tune

    runner = make_backend(settings.compute, settings.train.torch_threads)
    board = Board(f"shadow tune: study {settings.tune.study_name!r}, {settings.tune.n_trials} trials on "
                  f"{runner.name} ({runner.workers} at a time)", value_label=f"mean {settings.tune.objective}")
    try:
        with live(board, progress):
            result = tune(settings, runner, board=board)
    finally:
        runner.close()
    console.print(_best_table(result.paths.get("trials")))
    if result.best_number is not None:
        console.print(f"best trial {result.best_number}: mean validation {settings.tune.objective} "
                      f"{result.best_value:.6g}")
    for kind, path in result.paths.items():
        console.print(f"{kind}: {path}")
    if result.interrupted:
        raise typer.Exit(INTERRUPTED_EXIT_CODE)


def _best_table(trials_csv: Path | None) -> Table:
    """The best completed trials of the study, parameters included."""
    import pandas as pd

    table = Table(title=f"Best trials (of the whole study, top {TOP_TRIALS})", title_justify="left")
    if trials_csv is None or not trials_csv.is_file():
        return table
    from trainer.tuning.space import describe_params

    frame = pd.read_csv(trials_csv)
    top = frame[frame["state"] == "complete"].sort_values("value", ascending=False).head(TOP_TRIALS)
    params = [c for c in frame.columns if c.startswith("param_")]
    table.add_column("trial", justify="right")
    table.add_column("score", justify="right")
    table.add_column("parameters", overflow="fold")
    for _, row in top.iterrows():
        table.add_row(str(int(row["number"])), f"{row['value']:.4g}",
                      describe_params({c.removeprefix("param_"): row[c] for c in params}))
    return table


def register(app: typer.Typer) -> None:
    app.command("tune")(tune_command)
