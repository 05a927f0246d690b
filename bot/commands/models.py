"""``shadow models`` (the registry listing), ``shadow models promote VERSION`` (serve a
version: roll back, or promote by hand) and ``shadow models publish MODEL`` (register a model
trained by ``shadow train``).

A running daemon (``[daemon] strategy = "registry"``) picks a promotion up within
``[retrain] poll_seconds`` and switches between two candles.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bot.commands.common import console, ledger_reader, review_table
from config import UserError
from config.cli import ConfigOption, DbOption, command_settings
from config.settings import Settings

models_app = typer.Typer(help="The model registry: list versions, promote one (rollback).", no_args_is_help=False)


@models_app.callback(invoke_without_command=True)
def models(
    ctx: typer.Context,
    status_filter: Annotated[
        str | None, typer.Option("--status", help="candidate, promoted, rejected or retired.")
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """The model registry: versions, status, data range and metrics (`shadow models promote VERSION` to roll back)."""
    if ctx.invoked_subcommand is None:
        _list_models(ctx, status_filter)


def _list_models(ctx: typer.Context, status: str | None) -> None:
    from state.model_rows import MODEL_STATUSES
    from state.readers import iso_ms, list_models

    if status is not None and status not in MODEL_STATUSES:
        raise typer.BadParameter(f"{status!r} is not one of {', '.join(MODEL_STATUSES)}", param_hint="--status")
    with ledger_reader(command_settings(ctx).ledger) as conn:
        entries = list_models(conn, status)
    if not entries:
        console.print("no models registered")
        return
    table = review_table("models", "version", "status", "market", "created (UTC)", "promoted (UTC)", "data from",
                         "data to", "parent", "metrics", "sha256")
    for m in entries:
        metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.metrics.items())
        table.add_row(m.version, m.status, " ".join(filter(None, (m.symbol, m.interval))) or "-",
                      iso_ms(m.created_ms), iso_ms(m.promoted_ms) or "-", iso_ms(m.data_start_ms) or "-",
                      iso_ms(m.data_end_ms) or "-", m.parent_version or "-", metrics or "-", m.sha256[:12])
    console.print(table)


@models_app.command("promote")
def promote(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="The version to serve, e.g. v0003.")],
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Serve VERSION from now on (the model promoted before it for the same market is retired).

    The file is checked first: it must exist, have the sha256 recorded when it was
    published, and metadata that fits this code's features and lookback.
    """
    settings = command_settings(ctx)
    console.print(asyncio.run(promote_version(settings.ledger.db_path, settings, version)), highlight=False,
                  markup=False)


async def promote_version(db: Path, settings: Settings, version: str) -> str:
    """Promote ``version`` in the ledger at ``db`` after verifying its file; returns what
    happened, in one line.

    Raises:
        UserError: no such ledger or version, or a file that is missing, changed since it
            was published, or built for other features.
    """
    from state.clock import SYSTEM_CLOCK
    from state.errors import LedgerNotFoundError
    from state.ledger import Ledger
    from state.records import ModelStatus
    from strategies.model_metadata import load_metadata
    from trainer.models.store import verify_model_file

    if not db.is_file():
        raise LedgerNotFoundError(f"ledger {db}: no such file")
    async with await Ledger.open(db, lock_timeout_s=settings.ledger.lock_timeout_s) as ledger:
        entries = await ledger.registry.list_models()
        entry = next((m for m in entries if m.version == version), None)
        if entry is None:
            held = ", ".join(f"{m.version} ({m.status})" for m in entries) or "no models"
            raise UserError(f"ledger {db}: no model {version!r}; it holds {held}")
        market = " ".join(filter(None, (entry.symbol or "every symbol", entry.interval)))
        if entry.status == ModelStatus.PROMOTED:
            return f"{version} is already the promoted model for {market}"
        path = verify_model_file(entry, settings.env.lookback_window)
        before = [m for m in entries if m.status == ModelStatus.PROMOTED and (m.symbol, m.interval) ==
                  (entry.symbol, entry.interval)]  # what set_model_status retires
        now_ms = SYSTEM_CLOCK.now_ms()
        await ledger.registry.set_model_status(version, ModelStatus.PROMOTED, at_ms=now_ms)
        if entry.symbol is None:  # a shared model serves its symbols only once their own models step aside
            trained = load_metadata(path).market_ids()
            own = [m for m in entries if m.status == ModelStatus.PROMOTED and m.symbol in trained
                   and m.interval == entry.interval]
            for m in own:
                await ledger.registry.set_model_status(m.version, ModelStatus.RETIRED, at_ms=now_ms)
            before += own
    note = " (the retrain gate had rejected it)" if entry.status == ModelStatus.REJECTED else ""
    retired = f"; {', '.join(m.version for m in before)} retired" if before else ""
    return (f"{version} promoted for {market}{note}{retired}; a running daemon serving the registry switches to it "
            f"within {settings.retrain.poll_seconds:g} s ([retrain] poll_seconds)")


@models_app.command("publish")
def publish(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="A model zip saved by shadow train (its .meta.json beside it).")],
    promote_it: Annotated[bool, typer.Option(
        "--promote", help="Serve it at once (as shadow models promote does).")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Register MODEL in the registry (\\[retrain] registry_dir) as a candidate, or serve it with --promote.

    A model of one symbol is registered for that symbol and its timeframe.
    A shared model (shadow train --symbols A,B --shared) is registered with
    no symbol: the daemon serves it for every symbol without a promoted model
    of its own, and promoting it retires the per-symbol models of the symbols
    it was trained on.
    """
    settings = command_settings(ctx)
    console.print(asyncio.run(publish_file(settings.ledger.db_path, settings, model, promote=promote_it)),
                  highlight=False, markup=False)


async def publish_file(db: Path, settings: Settings, model: Path, *, promote: bool = False) -> str:
    """Copy ``model`` into the registry of the ledger at ``db`` (created if missing) and
    register it; returns what happened, in one line. A model saved without its exported
    policy (by an older Shadow) gets one written beside it first, so the daemon serves it
    without torch.

    Raises:
        UserError: no such file, no or unreadable metadata, a model built for other
            features or another lookback than ``[env] lookback_window``, or a zip SB3
            cannot load.
    """
    from state.ledger import Ledger
    from strategies.model_metadata import check_compatible, load_metadata
    from strategies.ppo import export_policy
    from trainer.models.store import publish_model

    if not model.is_file():
        raise UserError(f"{model}: no such model file")
    meta = load_metadata(model)
    check_compatible(meta, model, settings.env.lookback_window)
    await asyncio.to_thread(export_policy, model)
    symbols = meta.market_ids()
    async with await Ledger.open(db, lock_timeout_s=settings.ledger.lock_timeout_s) as ledger:
        entry = await publish_model(ledger, settings.retrain.registry_dir, model,
                                    symbol=None if meta.shared else symbols[0], interval=meta.timeframe,
                                    metrics={"symbols": ",".join(symbols)} if meta.shared else None)
    market = f"{entry.symbol} {entry.interval}" if entry.symbol else f"every symbol {entry.interval} (shared model " \
             f"of {','.join(symbols)})"
    done = f"{entry.version} registered for {market} in {db}: {entry.path}"
    if not promote:
        return f"{done}; serve it with: shadow models promote {entry.version}"
    return f"{done}; {await promote_version(db, settings, entry.version)}"


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
