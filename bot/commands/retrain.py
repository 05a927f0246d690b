"""``shadow retrain``: the retraining log, and ``--now`` to run one retrain in the foreground.

``--now`` takes the daemon's own path (:func:`trainer.retrain.runner.run_retrain`): a
child process trains on the ledger's candles, the gate judges the candidate on the most
recent holdout, and the candidate is published as promoted or rejected. A running daemon
serving the registry picks a promotion up within ``[retrain] poll_seconds``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from bot.commands.common import console, ledger_reader, review_table
from config.cli import EXIT_FAILED, ConfigOption, DbOption, command_settings, setting_option, split_list
from config.settings import Settings

if TYPE_CHECKING:
    from state.readers import TrialProgress
    from state.records import RetrainRun


def retrain(
    ctx: typer.Context,
    now: Annotated[bool, typer.Option("--now", help="Run one retrain now, in the foreground.")] = False,
    symbols: Annotated[str | None, setting_option(
        "feed.symbols", help="With --now: comma-separated symbols", convert=split_list)] = None,
    timesteps: Annotated[int | None, setting_option(
        "retrain.timesteps", help="With --now: PPO timesteps per retrain")] = None,
    warm_start: Annotated[bool | None, setting_option(
        "retrain.warm_start", "--warm-start/--no-warm-start", help="With --now: continue the promoted model")] = None,
    last: Annotated[int, typer.Option("--last", "-n", min=1, help="Without --now: show the newest N runs.")] = 20,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Without --now: each run's reason in full.")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """The retraining log; with --now, retrain, judge on the holdout and publish the candidate."""
    settings = command_settings(ctx)
    if not now:
        _print_runs(settings, last, verbose)
        return
    from config.logs import configure_logging

    configure_logging("WARNING")
    failed = asyncio.run(retrain_now(settings))
    if failed:
        raise typer.Exit(EXIT_FAILED)


async def retrain_now(settings: Settings) -> int:
    """One retrain per symbol (or one for all, with a shared model); returns how many failed."""
    from state.errors import LedgerNotFoundError
    from state.ledger import Ledger
    from state.records import RetrainStatus
    from trainer.retrain.runner import run_retrain

    path = settings.ledger.db_path
    if not path.is_file():
        raise LedgerNotFoundError(f"ledger {path}: no such file (retraining uses the candles the daemon stored)")
    symbols = settings.feed.symbols
    groups = [symbols] if settings.retrain.shared_model else [[s] for s in symbols]
    failed = 0
    async with await Ledger.from_settings(settings.ledger) as ledger:
        for group in groups:
            with console.status(f"retraining {', '.join(group)}: {settings.retrain.timesteps:,} timesteps, "
                                f"time limit {settings.retrain.time_limit_s:g} s ..."):
                outcome = await run_retrain(ledger, settings, group)
            failed += outcome.status == RetrainStatus.FAILED
            console.print(f"retrain {outcome.retrain_id} ({', '.join(group)}): {outcome.status}: {outcome.reason}",
                          highlight=False, markup=False)
    return failed


MIN_REASON_WIDTH = 30
"""Narrower than this, a reason column would be a tall ribbon: the reasons go below instead."""


def _print_runs(settings: Settings, last: int, verbose: bool) -> None:
    """The newest ``last`` runs. Status, model and live trial always show in full; the
    reason (the holdout verdict, then a live trial's verdict), the one long cell, wraps in
    the room the other columns leave, or (too little room, or ``verbose``) follows the
    table in full, one line per run."""
    from state.readers import list_retrains, trials_by_run

    with ledger_reader(settings.ledger) as conn:
        runs = list_retrains(conn, last)
        trials = trials_by_run(conn)
    if not runs:
        console.print("no retraining runs recorded")
        return
    room = console.width - console.measure(_runs_table(runs, trials, reasons=False)).maximum - 2  # the padding
    in_table = not verbose and room >= MIN_REASON_WIDTH
    table = _runs_table(runs, trials, reasons=in_table)
    if not in_table and not verbose:
        table.caption = "reasons: shadow retrain --verbose"
    console.print(table)
    if verbose:
        for run in runs:
            console.print(Text(f"#{run.retrain_id} {run.status}: {run.reason or '-'}"))


def _runs_table(runs: list[RetrainRun], trials: dict[int, TrialProgress], *, reasons: bool) -> Table:
    from state.readers import iso_ms

    columns = ["#", "started (UTC)", "seconds", "status", "symbols", "model", "live trial"]
    table = review_table("retrain runs", *columns)
    if reasons:
        table.add_column("reason", no_wrap=False, overflow="fold")
    for run in runs:
        seconds = run.metrics.get("seconds")
        symbols = run.metrics.get("symbols", [])
        shown = ",".join(symbols[:2]) + (f" +{len(symbols) - 2}" if len(symbols) > 2 else "")
        cells = [str(run.retrain_id), (iso_ms(run.started_ms) or "")[:16].replace("T", " "),
                 "-" if seconds is None else f"{seconds:.1f}", run.status, shown or "-", run.candidate_version or "-",
                 _live(trials.get(run.retrain_id))]
        table.add_row(*cells, *([Text(run.reason or "-")] if reasons else []))
    return table


def _live(progress: TrialProgress | None) -> str:
    """A live trial in a few words: how far it got, or its verdict's scores."""
    from state.records import TrialStatus

    if progress is None:
        return "-"
    trial = progress.trial
    if trial.status in (TrialStatus.PENDING, TrialStatus.RUNNING):
        return f"{trial.status} {progress.decided}/{trial.candles}"
    scores = trial.metrics.get("scores")
    if not scores:
        return str(trial.status)
    shown = " vs ".join("n/a" if scores[role] is None else f"{scores[role]:.3g}"
                        for role in ("candidate", "incumbent", "flat"))
    return f"{trial.status}: {trial.metric} {shown}"


def register(app: typer.Typer) -> None:
    app.command("retrain")(retrain)
