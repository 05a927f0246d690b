"""``shadow run`` (the service) and ``shadow demo`` (the service on a local replay, end to end)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.commands.common import console
from config.cli import (
    EXIT_FAILED,
    ConfigOption,
    DbOption,
    HttpPublicOption,
    LogLevelOption,
    command_settings,
    setting_option,
    split_list,
)


def account_flags(values: list[str]) -> list[dict[str, str]]:
    """``--account NAME=SPEC`` flags as ``[[accounts]]`` entries."""
    from config.accounts import parse_account_flag

    try:
        return [parse_account_flag(value) for value in values]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


if TYPE_CHECKING:  # the daemon pulls in pandas, ccxt and the rest: import it only when the command runs
    from bot.daemon import Daemon, DaemonReport


def run(
    ctx: typer.Context,
    config: ConfigOption = None,
    symbols: Annotated[str | None, setting_option(
        "feed.symbols", help="comma-separated Bybit symbols", convert=split_list)] = None,
    interval: Annotated[str | None, setting_option("feed.interval")] = None,
    strategy: Annotated[str | None, setting_option("daemon.strategy")] = None,
    accounts: Annotated[list[str] | None, setting_option(
        "accounts", "--account", metavar="NAME=SPEC", convert=account_flags,
        help="a paper account trading SPEC beside the others (repeat for more; replaces the [[accounts]] of the "
        "config; SPEC: registry, registry:VERSION or a strategy spec)")] = None,
    db: DbOption = None,
    log_level: LogLevelOption = "INFO",
    http: Annotated[str | None, setting_option("service.http", metavar="[HOST:]PORT")] = None,
    http_public: HttpPublicOption = None,
    log_format: Annotated[str | None, setting_option("service.log_format")] = None,
    log_file: Annotated[Path | None, setting_option("service.log_file")] = None,
) -> None:
    """Paper-trade live Bybit candles until SIGTERM/SIGINT (public data only, no orders, no API key).

    Each closed candle is decided and written to the SQLite ledger in one transaction; a
    restart resumes from the ledger and backfills missed candles over REST. Exits with
    status 1 when it stops for any reason other than a signal (so a supervisor restarts it).
    """
    from config.logs import configure_logging

    settings = command_settings(ctx)
    s = settings.service
    configure_logging(log_level, s.log_format, log_file=s.log_file, max_mb=s.log_max_mb, backups=s.log_backups)
    from bot.daemon import STOP_REQUESTED, Daemon

    report = asyncio.run(_serve(Daemon(settings)))
    if report.stop_reason != STOP_REQUESTED:
        raise typer.Exit(EXIT_FAILED)


async def _serve(daemon: Daemon) -> DaemonReport:
    """Run the daemon (with its HTTP endpoints when configured); the first SIGTERM/SIGINT
    asks it to finish the current decisions and stop."""
    from bot.alerts.watch import AlertService
    from bot.daemon import STOP_REQUESTED
    from bot.http_api import ServiceApi

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = daemon.settings.service
    async with AlertService(daemon, daemon.settings) as alerts, \
            ServiceApi(daemon, service) if service.http else contextlib.nullcontext():
        try:
            report = await daemon.run(stop)
        except BaseException as exc:
            alerts.stopping(f"{type(exc).__name__}: {exc}", requested=False)
            raise
        alerts.stopping(report.stop_reason, requested=report.stop_reason == STOP_REQUESTED)
        return report


def demo(
    directory: Annotated[Path, typer.Option(
        "--dir", help="where each demo run gets its own folder")] = Path("shadow-demo"),
    candles: Annotated[int, typer.Option(help="candles replayed through the live stream after the history")] = 6000,
    speed: Annotated[float, typer.Option(help="replay speed in candles per second")] = 400.0,
    timesteps: Annotated[int, typer.Option(
        help="PPO timesteps for the first model (0: trade a baseline instead)")] = 30_000,
    baseline: Annotated[str, typer.Option(help="strategy traded when --timesteps is 0")] = "sma:fast=10,slow=50",
    profile: Annotated[str, typer.Option(help="settings profile the first model trains with: default (the "
                                              "learning setup that converges) or seed (the seed's)")] = "default",
    log_level: LogLevelOption = "WARNING",
) -> None:
    """The whole service on this machine, with no account and no network.

    A local Bybit-compatible server replays the bundled real BTCUSDT candles; a first PPO
    model is trained on the candles before the replay and published to the registry; the
    daemon streams the replay over a websocket, backfills over REST, decides every candle
    and writes the SQLite ledger. Ends with a summary against buy & hold.
    """
    from bot.demo import run_demo
    from config.logs import configure_logging

    configure_logging(log_level)
    run_demo(directory, candles=candles, speed=speed, timesteps=timesteps, baseline=baseline, console=console,
             profile=profile)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("demo")(demo)
