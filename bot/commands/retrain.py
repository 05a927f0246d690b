"""``shadow retrain``: the retraining log, and ``--now`` to run one retrain in the foreground.

``--now`` takes the daemon's own path (:func:`trainer.retrain.runner.run_retrain`): a
child process trains on the ledger's candles, the gate judges the candidate on the most
recent holdout, and the candidate is published as promoted or rejected. A running daemon
serving the registry picks a promotion up within ``[retrain] poll_seconds``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer

from bot.commands.common import ConfigOption, console
from bot.commands.ledger import DbOption, _reader, _table
from config import load_settings
from config.settings import Settings


def retrain(
    now: Annotated[bool, typer.Option("--now", help="Run one retrain now, in the foreground.")] = False,
    symbols: Annotated[
        Optional[str], typer.Option(help="With --now: comma-separated symbols (default: \\[feed] symbols).")
    ] = None,
    timesteps: Annotated[Optional[int], typer.Option(min=64, help="With --now: PPO timesteps (default: \\[retrain] timesteps).")] = None,
    warm_start: Annotated[
        Optional[bool], typer.Option("--warm-start/--no-warm-start", help="With --now: continue the promoted model.")
    ] = None,
    last: Annotated[int, typer.Option("--last", "-n", min=1, help="Without --now: show the newest N runs.")] = 20,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """The retraining log; with --now, retrain, judge on the holdout and publish the candidate."""
    overrides: dict[str, dict[str, object]] = {}
    if symbols:
        overrides["feed"] = {"symbols": [s.strip() for s in symbols.split(",")]}
    retrain_overrides = {k: v for k, v in (("timesteps", timesteps), ("warm_start", warm_start)) if v is not None}
    if retrain_overrides:
        overrides["retrain"] = retrain_overrides
    if db:
        overrides["ledger"] = {"db_path": db}
    settings = load_settings(config, **overrides)
    if not now:
        _print_runs(db, config, last)
        return
    from bot.logs import configure_logging

    configure_logging("WARNING")
    failed = asyncio.run(retrain_now(settings))
    if failed:
        raise typer.Exit(1)


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


def _print_runs(db: Path | None, config: Path | None, last: int) -> None:
    from state.readers import iso_ms, list_retrains

    with _reader(db, config) as conn:
        runs = list_retrains(conn, last)
    if not runs:
        console.print("no retraining runs recorded")
        return
    table = _table("retrain runs", "#", "started (UTC)", "seconds", "status", "symbols", "model", "reason")
    for run in runs:
        seconds = run.metrics.get("seconds")
        table.add_row(str(run.retrain_id), iso_ms(run.started_ms), "-" if seconds is None else f"{seconds:.1f}",
                      run.status, ",".join(run.metrics.get("symbols", [])) or "-", run.candidate_version or "-",
                      run.reason or "-")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("retrain")(retrain)
