"""A daemon with its HTTP endpoints, against the local Bybit replay, for the service tests.

The daemon runs on the replay's virtual clock (``Daemon(clock=market.clock)``), so "how
long ago did the newest candle close" is measured in the replay's time, as it would be
in Bybit's time live.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pandas as pd

from bot.daemon import Daemon, DaemonReport
from bot.http_api import ServiceApi
from bot.replay.faults import parse_faults
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from config.settings import DaemonSettings, FeedSettings, LedgerSettings, RiskSettings, ServiceSettings, Settings
from tests.bot.conftest import fast_exchange
from tests.conftest import PREFIX

HISTORY = PREFIX  # the env's first decision index: the daemon warms up on exactly this over REST


@dataclass
class RunningService:
    """A daemon being replayed into, and an HTTP client for its endpoints."""

    daemon: Daemon
    api: ServiceApi
    market: ReplayMarket
    server: ReplayServer
    client: aiohttp.ClientSession
    task: asyncio.Task[DaemonReport]

    async def get(self, path: str) -> tuple[int, Any]:
        """Status and body (JSON, or text for /metrics) of ``GET path``."""
        async with self.client.get(self.api.url + path) as response:
            body = await (response.text() if path == "/metrics" else response.json())
            return response.status, body

    async def finished(self, timeout_s: float = 30.0) -> DaemonReport:
        """Wait until the daemon has decided the last replayed candle and stopped."""
        return await asyncio.wait_for(asyncio.shield(self.task), timeout_s)


@asynccontextmanager
async def running_service(frame: pd.DataFrame, db: Path, *, faults: Sequence[str] = (), speed: float = 200.0,
                          history: int = HISTORY, strategy: str = "sma:fast=5,slow=20",
                          exchange: dict[str, Any] | None = None, feed: dict[str, Any] | None = None,
                          service: dict[str, Any] | None = None, risk: dict[str, Any] | None = None,
                          symbols: Sequence[str] = ("BTCUSDT",)) -> AsyncIterator[RunningService]:
    """Replay ``frame`` (the first ``history`` candles as REST history) as each of ``symbols``
    into a daemon with ``/health``, ``/metrics`` and ``/status`` on a free local port. The
    daemon stops by itself after deciding a last candle; the HTTP server stays up until the
    block ends."""
    market = ReplayMarket([ReplaySeries.from_frame(symbol, frame) for symbol in symbols], history=history)
    last_ms = int(market.open_time_ms[-1])
    async with ReplayServer(market, speed=speed, faults=parse_faults(faults)) as server:
        settings = Settings(
            exchange=fast_exchange(server, **(exchange or {})),
            feed=FeedSettings(symbols=list(symbols), **(feed or {})),
            ledger=LedgerSettings(db_path=db), daemon=DaemonSettings(strategy=strategy, heartbeat_minutes=60),
            service=ServiceSettings(http="127.0.0.1:0", **(service or {})), risk=RiskSettings(**(risk or {})),
        )
        daemon = Daemon(settings, clock=market.clock)
        stop = asyncio.Event()
        daemon.listeners.append(lambda symbol, item, _: stop.set() if item.candle.open_time_ms >= last_ms else None)
        async with ServiceApi(daemon, settings.service) as api, aiohttp.ClientSession() as client:
            task = asyncio.create_task(daemon.run(stop))
            try:
                yield RunningService(daemon, api, market, server, client, task)
            finally:
                stop.set()
                await asyncio.gather(task, return_exceptions=True)
