"""``shadow tune``: hyperparameter search (Optuna TPE + median pruning) scored by walk-forward
validation, locally or on a Ray cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bot.commands.common import console
from config.cli import (
    EXIT_INTERRUPTED,
    BackendOption,
    ConfigOption,
    RayAddressOption,
    WorkersOption,
    command_settings,
    setting_option,
)
from trainer.cli import NumCandlesOption, SymbolOption, TimeframeOption, log_training

TOP_TRIALS = 10


def tune_command(
    ctx: typer.Context,
    config: ConfigOption = None,
    data: Annotated[Path | None, setting_option(
        "train.data", help="candle CSV to tune on (default: fetch [train] symbol from Bybit)")] = None,
    symbol: SymbolOption = None,
    timeframe: TimeframeOption = None,
    num_candles: NumCandlesOption = None,
    trials: Annotated[int | None, setting_option("tune.n_trials", "--trials")] = None,
    timesteps: Annotated[int | None, setting_option("tune.timesteps")] = None,
    folds: Annotated[int | None, setting_option("tune.folds")] = None,
    fold_train_candles: Annotated[int | None, setting_option("tune.fold_train_candles")] = None,
    fold_validation_candles: Annotated[int | None, setting_option("tune.fold_validation_candles")] = None,
    objective: Annotated[str | None, setting_option("tune.objective")] = None,
    study_name: Annotated[str | None, setting_option("tune.study_name")] = None,
    storage: Annotated[str | None, setting_option("tune.storage")] = None,
    out: Annotated[Path | None, setting_option("tune.out_dir", "--out")] = None,
    seed: Annotated[int | None, setting_option("tune.seed")] = None,
    seeds: Annotated[int | None, setting_option("tune.seeds")] = None,
    profile: Annotated[str | None, setting_option("profile")] = None,
    timeout: Annotated[float | None, setting_option("tune.timeout_s", "--timeout")] = None,
    backend: BackendOption = None,
    workers: WorkersOption = None,
    ray_address: RayAddressOption = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="live table of trials")] = True,
) -> None:
    """Search PPO hyperparameters, scored by walk-forward validation; the test slice is never used.

    Writes trials.csv, summary.json, summary.png and best.toml (for shadow train --config) to --out;
    the study lives in an Optuna storage (SQLite by default) and a rerun continues it.
    """
    settings = command_settings(ctx, train={"progress": False})
    log_training()
    from trainer.jobs.backends import make_backend
    from trainer.jobs.board import Board, live
    from trainer.tuning.search import load_tuning_data, tune

    tuning = load_tuning_data(settings)  # bad data fails here, before the table shows
    runner = make_backend(settings.compute, settings.train.torch_threads)
    board = Board(f"shadow tune: study {settings.tune.study_name!r}, {settings.tune.n_trials} trials on "
                  f"{runner.name} ({runner.workers} at a time)", value_label=f"mean {settings.tune.objective}")
    try:
        with live(board, progress):
            result = tune(settings, runner, board=board, data=tuning)
    finally:
        runner.close()
    console.print(_best_table(result.paths.get("trials")))
    if result.best_number is not None:
        console.print(f"best trial {result.best_number}: mean validation {settings.tune.objective} "
                      f"{result.best_value:.6g}")
    for kind, path in result.paths.items():
        console.print(f"{kind}: {path}")
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


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
    table.add_column("seeds: range", justify="right")
    table.add_column("timing", justify="right")
    table.add_column("trades", justify="right")
    table.add_column("fees, % capital", justify="right")
    # funding only where a trial paid some (a perpetual's data): on spot the column is all zeros
    funding = "mean_funding_to_capital" in top and bool(top["mean_funding_to_capital"].fillna(0).ne(0).any())
    if funding:
        table.add_column("funding, % capital", justify="right")
    table.add_column("parameters", overflow="fold")
    for _, row in top.iterrows():
        spread = "-" if pd.isna(row.get("seed_min")) or row.get("seeds", 1) < 2 else \
            f"{row['seed_min']:.4g} .. {row['seed_max']:.4g}"
        costs = [_percent(row.get("mean_fees_to_capital"), "")]
        if funding:
            costs.append(_percent(row.get("mean_funding_to_capital"), ""))
        table.add_row(str(int(row["number"])), f"{row['value']:.4g}", spread, _percent(row.get("mean_timing"), "+"),
                      _number(row.get("mean_n_trades")), *costs,
                      describe_params({c.removeprefix("param_"): row[c] for c in params}))
    return table


def _percent(value: float | None, sign: str) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:{sign}.2f}%"


def _number(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.1f}"


def register(app: typer.Typer) -> None:
    app.command("tune")(tune_command)
