"""``shadow run`` (the service) and ``shadow demo`` (the service on a local replay, end to end)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer

from bot.commands.common import ConfigOption, console
from config import load_settings

LogLevelOption = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]


def run(
    config: ConfigOption = None,
    symbols: Annotated[Optional[str], typer.Option(help="comma-separated Bybit symbols (default: \\[feed] symbols)")] = None,
    interval: Annotated[Optional[str], typer.Option(help="candle interval, e.g. 1m (default: \\[feed] interval)")] = None,
    strategy: Annotated[
        Optional[str], typer.Option(help="'registry' or a strategy spec (default: \\[daemon] strategy)")
    ] = None,
    db: Annotated[Optional[Path], typer.Option(help="ledger file (default: \\[ledger] db_path)")] = None,
    log_level: LogLevelOption = "INFO",
) -> None:
    """Paper-trade live Bybit candles until SIGTERM/SIGINT (public data only, no orders, no API key).

    Each closed candle is decided and written to the SQLite ledger in one transaction; a
    restart resumes from the ledger and backfills missed candles over REST.
    """
    from bot.daemon import Daemon
    from bot.logs import configure_logging

    overrides: dict[str, dict[str, object]] = {}
    if symbols or interval:
        overrides["feed"] = {k: v for k, v in (("symbols", symbols and [s.strip() for s in symbols.split(",")]),
                                               ("interval", interval)) if v}
    if strategy:
        overrides["daemon"] = {"strategy": strategy}
    if db:
        overrides["ledger"] = {"db_path": db}
    settings = load_settings(config, **overrides)
    configure_logging(log_level)
    asyncio.run(_serve(Daemon(settings)))


async def _serve(daemon: object) -> None:
    """Run the daemon; the first SIGTERM/SIGINT asks it to finish the current decisions and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await daemon.run(stop)  # type: ignore[attr-defined]


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
