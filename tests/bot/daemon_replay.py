"""The daemon replaying a candle frame from the local Bybit replay server into a ledger: the
ledgers that the daemon, verify and fault tests check."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd

from bot.daemon import Daemon
from bot.replay.faults import parse_faults
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from config.settings import DaemonSettings, FeedSettings, LedgerSettings, Settings
from tests.bot.conftest import fast_exchange
from tests.conftest import PREFIX

HISTORY = PREFIX  # exactly the env's first decision index: the daemon warms up on it over REST


def settings_for(server: ReplayServer, db: Path, strategy: str, **sections: object) -> Settings:
    """The daemon's settings against ``server``; ``sections`` add or replace sections (``feed=...``)."""
    return Settings(**{
        "exchange": fast_exchange(server), "feed": FeedSettings(symbols=["BTCUSDT"]),
        "ledger": LedgerSettings(db_path=db),
        "daemon": DaemonSettings(strategy=strategy, heartbeat_minutes=0.002)} | sections)


async def replay_daemon(frame: pd.DataFrame, db: Path, strategy: str, *, faults: tuple[str, ...] = (),
                        speed: float = 400.0, history: int = HISTORY, **sections: object) -> Daemon:
    """Replay ``frame`` through the daemon until it has decided the last candle."""
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", frame)], history=history)
    last_ms = int(market.open_time_ms[-1])
    async with ReplayServer(market, speed=speed, faults=parse_faults(faults)) as server:
        daemon = Daemon(settings_for(server, db, strategy, **sections))
        stop = asyncio.Event()
        daemon.listeners.append(lambda symbol, item, _: stop.set() if item.candle.open_time_ms >= last_ms else None)
        await asyncio.wait_for(daemon.run(stop), 30)
    return daemon
