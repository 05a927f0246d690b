"""Fixtures for the live-feed tests: real sample candles, a replay server, a fast feed."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import pytest

from bot.bybit.feed import CandleFeed
from bot.bybit.rest import BybitRest
from bot.bybit.sequencer import FeedCandle
from bot.bybit.stats import FeedStats, RestStats
from bot.replay.faults import parse_faults
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from config.settings import ExchangeSettings, FeedSettings
from env.types import Candle


@pytest.fixture(scope="session")
def btc_frame(btc_candles: pd.DataFrame) -> pd.DataFrame:
    """The first 400 real BTCUSDT 1m candles of March 2023 (bundled sample)."""
    return btc_candles.iloc[:400].reset_index(drop=True)


@pytest.fixture(scope="session")
def eth_frame(eth_candles: pd.DataFrame) -> pd.DataFrame:
    """The first 400 real ETHUSDT 1m candles of October 2023 (bundled sample)."""
    return eth_candles.iloc[:400].reset_index(drop=True)


def frame_candles(symbol: str, frame: pd.DataFrame) -> list[Candle]:
    """Every row of ``frame`` as the candle a client must receive."""
    return [
        Candle(symbol, "1m", int(r.open_time_ms), float(r.open), float(r.high), float(r.low), float(r.close),
               float(r.volume))
        for r in frame.itertuples()
    ]


@pytest.fixture
def as_candles() -> Callable[[str, pd.DataFrame], list[Candle]]:
    """:func:`frame_candles`, for tests in other folders."""
    return frame_candles


@pytest.fixture
def client_log(caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """What the client side (``bot.bybit``) logged so far; the server's own lines are left out,
    so a test cannot pass on the server announcing its fault."""
    caplog.set_level(logging.DEBUG)

    def text() -> str:
        return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot.bybit"))

    return text


def fast_exchange(server: ReplayServer, category: str = "linear", **overrides: object) -> ExchangeSettings:
    """Settings with short keepalive and back-off so a test run takes seconds."""
    values: dict[str, object] = dict(
        category=category, ws_url=server.ws_url(category), rest_url=server.rest_url, ping_interval_s=0.1,
        watchdog_s=0.4, open_timeout_s=2.0, backoff_min_s=0.02, backoff_max_s=0.2,
    )
    return ExchangeSettings(**(values | overrides))


@pytest.fixture
def exchange_for() -> Callable[..., ExchangeSettings]:
    """:func:`fast_exchange`, for tests in other folders."""
    return fast_exchange


@dataclass
class FeedRun:
    """What a feed delivered for a whole replay, and what both sides recorded."""

    candles: dict[str, list[FeedCandle]]
    feed: FeedStats
    rest: RestStats
    server: ReplayServer

    def plain(self, symbol: str) -> list[Candle]:
        return [item.candle for item in self.candles[symbol]]


ReplayThroughFeed = Callable[..., Awaitable[FeedRun]]


@pytest.fixture
def replay_through_feed() -> ReplayThroughFeed:
    """Run a replay server and a CandleFeed against it until every candle has been delivered.

    The feed resumes after the last history candle, so it must deliver exactly the
    replayed candles of every symbol.
    """

    async def run(
        series: Sequence[ReplaySeries],
        *,
        history: int,
        faults: Sequence[str] = (),
        speed: float = 200.0,
        category: str = "linear",
        timeout_s: float = 20.0,
        rest_class: type[BybitRest] = BybitRest,
        exchange_overrides: dict[str, object] | None = None,
    ) -> FeedRun:
        market = ReplayMarket(series, history=history)
        last_ms = int(market.open_time_ms[-1])
        resume = {s.symbol: int(market.open_time_ms[history - 1]) for s in series}
        async with ReplayServer(market, speed=speed, faults=parse_faults(faults)) as server:
            exchange = fast_exchange(server, category, **(exchange_overrides or {}))
            feed_settings = FeedSettings(symbols=[s.symbol for s in series])
            async with rest_class(exchange, rng=random.Random(1)) as rest, CandleFeed(
                exchange, feed_settings, rest, resume_after=resume, rng=random.Random(2)
            ) as feed:

                async def collect(symbol: str) -> list[FeedCandle]:
                    got = []
                    async for item in feed.candles(symbol):
                        got.append(item)
                        if item.candle.open_time_ms >= last_ms:
                            return got
                    raise AssertionError("unreachable: candles() only ends by raising")

                results = await asyncio.wait_for(asyncio.gather(*(collect(s.symbol) for s in series)), timeout_s)
                by_symbol = dict(zip([s.symbol for s in series], results, strict=True))
                return FeedRun(by_symbol, feed.stats, rest.stats, server)

    return run
