"""``shadow run`` (the service) and ``shadow demo`` (the service on a local replay, end to end)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bot.commands.common import ConfigOption, console
from config import load_settings

if TYPE_CHECKING:  # the daemon pulls in pandas, ccxt and the rest: import it only when the command runs
    from bot.daemon import Daemon, DaemonReport

LogLevelOption = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]
HttpOption = Annotated[Optional[str], typer.Option(
    "--http", metavar="[HOST:]PORT",
    help="Serve /health, /metrics and /status here (a bare PORT listens on 127.0.0.1; default: \\[service] http, off).",
)]
LogFormatOption = Annotated[Optional[str], typer.Option(
    "--log-format", help="text, json (JSON lines) or journal (systemd priorities) (default: \\[service] log_format).",
)]
LogFileOption = Annotated[Optional[Path], typer.Option(
    "--log-file", help="Also log to this file, rotated by size (default: \\[service] log_file).",
)]


def run(
    config: ConfigOption = None,
    symbols: Annotated[Optional[str], typer.Option(help="comma-separated Bybit symbols (default: \\[feed] symbols)")] = None,
    interval: Annotated[Optional[str], typer.Option(help="candle interval, e.g. 1m (default: \\[feed] interval)")] = None,
    strategy: Annotated[
        Optional[str], typer.Option(help="'registry' or a strategy spec (default: \\[daemon] strategy)")
    ] = None,
    db: Annotated[Optional[Path], typer.Option(help="ledger file (default: \\[ledger] db_path)")] = None,
    log_level: LogLevelOption = "INFO",
    http: HttpOption = None,
    log_format: LogFormatOption = None,
    log_file: LogFileOption = None,
) -> None:
    """Paper-trade live Bybit candles until SIGTERM/SIGINT (public data only, no orders, no API key).

    Each closed candle is decided and written to the SQLite ledger in one transaction; a
    restart resumes from the ledger and backfills missed candles over REST. Exits with
    status 1 when it stops for any reason other than a signal (so a supervisor restarts it).
    """
    from bot.daemon import STOP_REQUESTED, Daemon
    from bot.logs import configure_logging

    overrides: dict[str, dict[str, object]] = {}
    if symbols or interval:
        overrides["feed"] = {k: v for k, v in (("symbols", symbols and [s.strip() for s in symbols.split(",")]),
                                               ("interval", interval)) if v}
    if strategy:
        overrides["daemon"] = {"strategy": strategy}
    if db:
        overrides["ledger"] = {"db_path": db}
    service = {k: v for k, v in (("http", http), ("log_format", log_format), ("log_file", log_file)) if v is not None}
    if service:
        overrides["service"] = service
    settings = load_settings(config, **overrides)
    s = settings.service
    configure_logging(log_level, s.log_format, log_file=s.log_file, max_mb=s.log_max_mb, backups=s.log_backups)
    report = asyncio.run(_serve(Daemon(settings)))
    if report.stop_reason != STOP_REQUESTED:
        raise typer.Exit(1)


async def _serve(daemon: Daemon) -> DaemonReport:
    """Run the daemon (with its HTTP endpoints when configured); the first SIGTERM/SIGINT
    asks it to finish the current decisions and stop."""
    from bot.http_api import ServiceApi

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = daemon.settings.service
    async with ServiceApi(daemon, service) if service.http else contextlib.nullcontext():
        return await daemon.run(stop)


def demo(
    directory: Annotated[Path, typer.Option("--dir", help="where each demo run gets its own folder")] = Path("shadow-demo"),
    candles: Annotated[int, typer.Option(help="candles replayed through the live stream after the history")] = 6000,
    speed: Annotated[float, typer.Option(help="replay speed in candles per second")] = 400.0,
    timesteps: Annotated[int, typer.Option(help="PPO timesteps for the first model (0: trade a baseline instead)")] = 30_000,
    baseline: Annotated[str, typer.Option(help="strategy traded when --timesteps is 0")] = "sma:fast=10,slow=50",
    log_level: LogLevelOption = "WARNING",
) -> None:
    """The whole service on this machine, with no account and no network.

    A local Bybit-compatible server replays the bundled real BTCUSDT candles; a first PPO
    model is trained on the candles before the replay and published to the registry; the
    daemon streams the replay over a websocket, backfills over REST, decides every candle
    and writes the SQLite ledger. Ends with a summary against buy & hold.
    """
    from bot.demo import run_demo
    from bot.logs import configure_logging

    configure_logging(log_level)
    run_demo(directory, candles=candles, speed=speed, timesteps=timesteps, baseline=baseline, console=console)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("demo")(demo)
