"""``shadow models`` (the registry listing) and ``shadow models promote VERSION`` (serve a
version: roll back, or promote by hand).

A running daemon (``[daemon] strategy = "registry"``) picks a promotion up within
``[retrain] poll_seconds`` and switches between two candles.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from bot.commands import ledger as ledger_commands
from bot.commands.common import ConfigOption, console
from config import UserError, load_settings
from config.settings import Settings

models_app = typer.Typer(help="The model registry: list versions, promote one (rollback).", no_args_is_help=False)


@models_app.callback(invoke_without_command=True)
def models(
    ctx: typer.Context,
    status_filter: Annotated[Optional[str], typer.Option("--status", help="candidate, promoted, rejected or retired.")] = None,
    db: ledger_commands.DbOption = None,
    config: ConfigOption = None,
) -> None:
    """The model registry: versions, status, data range and metrics (`shadow models promote VERSION` to roll back)."""
    if ctx.invoked_subcommand is None:
        ledger_commands.models(status_filter, db, config)


@models_app.command("promote")
def promote(
    version: Annotated[str, typer.Argument(help="The version to serve, e.g. v0003.")],
    db: ledger_commands.DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Serve VERSION from now on (the model promoted before it for the same market is retired).

    The file is checked first: it must exist, have the sha256 recorded when it was
    published, and metadata that fits this code's features and lookback.
    """
    settings = load_settings(config)
    path = db or settings.ledger.db_path
    console.print(asyncio.run(promote_version(path, settings, version)), highlight=False, markup=False)


async def promote_version(db: Path, settings: Settings, version: str) -> str:
    """Promote ``version`` in the ledger at ``db`` after verifying its file; returns what
    happened, in one line.

    Raises:
        UserError: no such ledger or version, or a file that is missing, changed since it
            was published, or built for other features.
    """
    from state.errors import LedgerNotFoundError
    from state.ledger import Ledger
    from trainer.registry import verify_model_file

    if not db.is_file():
        raise LedgerNotFoundError(f"ledger {db}: no such file")
    async with await Ledger.open(db, lock_timeout_s=settings.ledger.lock_timeout_s) as ledger:
        entries = await ledger.registry.list_models()
        entry = next((m for m in entries if m.version == version), None)
        if entry is None:
            held = ", ".join(f"{m.version} ({m.status})" for m in entries) or "no models"
            raise UserError(f"ledger {db}: no model {version!r}; it holds {held}")
        market = " ".join(filter(None, (entry.symbol, entry.interval))) or "every market"
        if entry.status == "promoted":
            return f"{version} is already the promoted model for {market}"
        verify_model_file(entry, settings.env.lookback_window)
        before = next((m for m in entries if m.status == "promoted" and (m.symbol, m.interval) ==
                       (entry.symbol, entry.interval)), None)  # what set_model_status retires
        await ledger.registry.set_model_status(version, "promoted", at_ms=time.time_ns() // 1_000_000)
    note = " (the retrain gate had rejected it)" if entry.status == "rejected" else ""
    retired = f"; {before.version} retired" if before else ""
    return (f"{version} promoted for {market}{note}{retired}; a running daemon serving the registry switches to it "
            f"within {settings.retrain.poll_seconds:g} s ([retrain] poll_seconds)")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
