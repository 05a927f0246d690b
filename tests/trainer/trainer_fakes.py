"""Exchanges for the trainer's tests: an in-memory fake ccxt Bybit, and the product's replay
server (``bot.replay``) on 127.0.0.1 for the real ccxt client. No network."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pandas as pd

from bot.replay.faults import parse_faults
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from trainer.data.history import Market

MINUTE = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE
MARKET = Market("BTC/USDT:USDT", "1m")
FUNDING_EVERY = 480 * MINUTE


class FakeBybit:
    """Candles ``T0 + i minutes`` for i in range(n); ``now`` (the exchange's clock, and the
    local one) sits inside the last one, which is therefore still forming (Bybit returns it
    anyway, as the real one does). Injects exactly the ccxt errors a test lists, in order.

    As the linear perpetual it also is: ``fundingInterval`` 480 min in its market info and a
    settlement every ``funding_every_ms`` (8 h unless a test says otherwise) up to now, its
    rate a function of the time (``funding_rate``); ``fetch_funding_rate_history`` answers
    as ccxt's bybit does (the newest ``limit`` in the window, oldest first)."""

    def __init__(self, n: int, failures: list[Exception | None] | None = None) -> None:
        self.rows = [[T0 + i * MINUTE, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 1.0 + i] for i in range(n)]
        self.now = T0 + (n - 1) * MINUTE + 30_000
        self.failures = list(failures or [])
        self.time_failures: list[Exception] = []
        self.calls: list[tuple[int, int, int]] = []
        self.funding_every_ms = FUNDING_EVERY
        self.funding_calls: list[tuple[int, int, int]] = []

    @staticmethod
    def funding_rate(time_ms: int) -> float:
        return (time_ms // FUNDING_EVERY % 7 - 3) * 1e-4

    def settlements(self) -> list[tuple[int, float]]:
        """Every settlement up to now."""
        first = -(-self.rows[0][0] // self.funding_every_ms) * self.funding_every_ms - 10 * self.funding_every_ms
        return [(t, self.funding_rate(t)) for t in range(first, self.now + 1, self.funding_every_ms)]

    def load_markets(self, reload: bool = False, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return {MARKET.symbol: self.market(MARKET.symbol)}

    def market(self, symbol: str) -> dict[str, Any]:
        assert symbol == MARKET.symbol
        return {"symbol": symbol, "info": {"fundingInterval": 480}}

    def fetch_funding_rate_history(self, symbol: str | None = None, since: int | None = None, limit: int | None = None,
                                   params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        assert symbol == MARKET.symbol
        until = (params or {})["until"]
        self.funding_calls.append((since, until, limit))
        rows = [(t, r) for t, r in self.settlements() if since <= t <= until][-limit:]
        return [{"symbol": symbol, "timestamp": t, "fundingRate": r} for t, r in rows]

    def milliseconds(self) -> int:
        return self.now

    def fetch_time(self, params: dict[str, Any] | None = None) -> int:
        if self.time_failures:
            raise self.time_failures.pop(0)
        return self.now

    def add_candles(self, count: int) -> None:
        for _ in range(count):
            last = self.rows[-1]
            self.rows.append([last[0] + MINUTE, *[v + 1 for v in last[1:]]])
        self.now += count * MINUTE

    def fetch_ohlcv(self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None,
                    params: dict[str, Any] | None = None) -> list[list[float]]:
        assert symbol == MARKET.symbol and timeframe == "1m" and since is None  # ccxt would round since
        since, until = (params or {})["start"], (params or {})["end"]
        self.calls.append((since, until, limit))
        if self.failures and (failure := self.failures.pop(0)) is not None:
            raise failure
        return [list(r) for r in self.rows if since <= r[0] <= until][:limit]


@asynccontextmanager
async def replay_bybit(candles: pd.DataFrame, *, history: int,
                       faults: Sequence[str] = ()) -> AsyncIterator[ReplayServer]:
    """The replay server serving ``candles`` as Bybit's BTCUSDT (spot and linear).

    The first ``history`` candles are closed and candle ``history`` is forming. Nobody
    subscribes to its websocket, so its virtual clock stands still unless a test moves it
    (``server.market.form`` / ``close``). Drive the synchronous ccxt client from a thread
    (``asyncio.to_thread``) so the server keeps answering on the test's event loop.
    """
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", candles)], history=history)
    async with ReplayServer(market, speed=1.0, faults=parse_faults(faults)) as server:
        yield server
