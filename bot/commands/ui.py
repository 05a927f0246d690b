"""``shadow ui``: the dashboard of any ledger file, read-only, without a daemon."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from bot.commands.common import console
from config.cli import ConfigOption, DbOption, HttpPublicOption, LogLevelOption, command_settings
from config.errors import UserError

if TYPE_CHECKING:  # aiohttp and the queries load only when the command runs
    from bot.web.server import LedgerDashboard


def ui(
    ctx: typer.Context,
    db: DbOption = None,
    http: Annotated[str | None, typer.Option(
        "--http", metavar="[HOST:]PORT", help="Where to listen (a bare PORT listens on 127.0.0.1; default: "
        "127.0.0.1:9109).")] = None,
    http_public: HttpPublicOption = None,
    config: ConfigOption = None,
    log_level: LogLevelOption = "WARNING",
) -> None:
    """Serve the dashboard (overview, market, equity, trades, models) for a ledger file until Ctrl-C.

    Read-only: a backup, a colleague's copy, or the ledger a daemon is writing right now
    (pages update live as it commits). Loopback only unless --http-public.
    """
    from bot.web.server import DEFAULT_LISTEN, LedgerDashboard
    from config.logs import configure_logging
    from config.settings import parse_listen

    configure_logging(log_level)
    settings = command_settings(ctx)
    address = http or DEFAULT_LISTEN
    try:
        host, port = parse_listen(address)
    except ValueError as exc:
        raise UserError(f"--http {address!r}: {exc}") from None
    dashboard = LedgerDashboard(settings.ledger.db_path, host, port, allow_public=settings.service.http_public,
                                service=settings.service, lock_timeout_s=settings.ledger.lock_timeout_s)
    asyncio.run(_serve(dashboard))


async def _serve(dashboard: LedgerDashboard) -> None:
    """Serve until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with dashboard:
        console.print(f"dashboard of {dashboard.db} at {dashboard.url}/ (read-only; Ctrl-C to stop)",
                      highlight=False, markup=False, soft_wrap=True)
        await stop.wait()


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)
