"""Which funding a candle settles, live: the stream's announcement when its connection held,
else the exchange's history, retried like the kline backfill (:mod:`bot.bybit.funding`)."""

from __future__ import annotations

import random

import pytest

from bot.bybit.funding import HISTORY, TICKER, FundingFeed, ResolvedFunding
from bot.bybit.rest import RestError
from bot.bybit.schemas import TickerData
from config.settings import ExchangeSettings

HOUR = 3_600_000
T = 1_677_657_600_000  # 2023-03-01 08:00 UTC, a funding time
OPEN, CLOSE = T - 60_000, T  # the candle that ends at T


class FakeRest:
    """The funding half of :class:`bot.bybit.rest.BybitRest`: history that appears after
    ``publish_after`` requests, and failures to raise first."""

    def __init__(self, history: dict[int, float], publish_after: int = 0, failures: int = 0) -> None:
        self.history = history
        self.publish_after = publish_after
        self.failures = failures
        self.requests: list[tuple[int, int]] = []

    async def funding_interval_ms(self, symbol: str) -> int:
        return 8 * HOUR

    async def fetch_funding(self, symbol: str, since_ms: int, until_ms: int) -> list[tuple[int, float]]:
        self.requests.append((since_ms, until_ms))
        if self.failures:
            self.failures -= 1
            raise RestError("Bybit REST: funding history: network error after 6 attempt(s)")
        if len(self.requests) <= self.publish_after:
            return []
        return [(t, r) for t, r in sorted(self.history.items()) if since_ms <= t <= until_ms]


async def feed_for(rest: FakeRest, known: list[tuple[int, float]] | None = None) -> FundingFeed:
    """A funding feed whose BTCUSDT ticker is subscribed on a live connection."""
    exchange = ExchangeSettings(backoff_min_s=0.001, backoff_max_s=0.002, rest_attempts=3)
    feed = FundingFeed(rest, exchange, random.Random(0))  # type: ignore[arg-type]
    await feed.start("BTCUSDT", known or [])
    feed.on_subscribed("BTCUSDT")
    return feed


async def test_an_announcement_on_the_live_connection_is_applied_without_a_request() -> None:
    rest = FakeRest({T: 9e-4})
    feed = await feed_for(rest)
    feed.on_ticker("BTCUSDT", TickerData(symbol="BTCUSDT", fundingRate=1e-4, nextFundingTime=T))
    assert await feed.due("BTCUSDT", OPEN, CLOSE) == [ResolvedFunding(T, 1e-4, TICKER)]
    assert rest.requests == [] and feed.announced("BTCUSDT") == (T, 1e-4)


@pytest.mark.parametrize("lost", ["reconnected", "disconnected"])
async def test_an_announcement_from_a_lost_connection_is_replaced_by_the_history(lost: str) -> None:
    rest = FakeRest({T: 9e-4})
    feed = await feed_for(rest)
    feed.on_ticker("BTCUSDT", TickerData(symbol="BTCUSDT", fundingRate=1e-4, nextFundingTime=T))
    if lost == "reconnected":
        feed.on_subscribed("BTCUSDT")  # subscribed again: later announcements for T may have been missed
    else:
        feed.on_link_lost("BTCUSDT")
    assert await feed.due("BTCUSDT", OPEN, CLOSE) == [ResolvedFunding(T, 9e-4, HISTORY)]
    assert rest.requests == [(OPEN + 1, CLOSE)]


async def test_a_delta_keeps_the_rate_with_the_next_funding_time_until_either_moves() -> None:
    feed = await feed_for(FakeRest({}))
    feed.on_ticker("BTCUSDT", TickerData(symbol="BTCUSDT", fundingRate=1e-4, nextFundingTime=T - 8 * HOUR))
    feed.on_ticker("BTCUSDT", TickerData(symbol="BTCUSDT", nextFundingTime=T))  # the rate did not change
    feed.on_ticker("BTCUSDT", TickerData(symbol="BTCUSDT"))  # a delta of other fields
    assert feed.announced("BTCUSDT") == (T, 1e-4)
    feed.on_ticker("BTCUSDT", TickerData(symbol="BTCUSDT", fundingRate=-2e-4))
    feed.on_ticker("BTCUSDT", TickerData(symbol="BTCUSDT", fundingRate=0.3))  # beyond the bound: ignored
    assert await feed.due("BTCUSDT", OPEN, CLOSE) == [ResolvedFunding(T, -2e-4, TICKER)]


async def test_a_stored_settlement_wins_over_any_announcement() -> None:
    """After a restart the ledger's rate for T is applied again, whatever the stream says now."""
    rest = FakeRest({T: 9e-4})
    feed = await feed_for(rest, known=[(T, 5e-4)])
    feed.on_ticker("BTCUSDT", TickerData(symbol="BTCUSDT", fundingRate=1e-4, nextFundingTime=T))
    assert await feed.due("BTCUSDT", OPEN, CLOSE) == [ResolvedFunding(T, 5e-4, HISTORY)]
    assert rest.requests == []


async def test_history_not_published_yet_is_asked_again_and_failures_are_retried(
        caplog: pytest.LogCaptureFixture) -> None:
    rest = FakeRest({T: 9e-4}, publish_after=3, failures=2)  # requests 1-2 fail, 3 answers without T
    feed = await feed_for(rest)
    assert await feed.due("BTCUSDT", OPEN, CLOSE) == [ResolvedFunding(T, 9e-4, HISTORY)]
    assert len(rest.requests) == 4  # two failures, one answer without T, then T
    assert caplog.text.count("funding history for 2023-03-01 08:00 failed") == 2


async def test_a_grid_time_the_history_never_settled_charges_nothing(caplog: pytest.LogCaptureFixture) -> None:
    rest = FakeRest({})
    feed = await feed_for(rest)
    with caplog.at_level("INFO"):
        assert await feed.due("BTCUSDT", OPEN, CLOSE) == []
    assert len(rest.requests) == 3 and "no funding settled at 2023-03-01 08:00" in caplog.text


async def test_an_announced_time_missing_from_the_history_keeps_the_announced_rate() -> None:
    rest = FakeRest({})
    feed = await feed_for(rest)
    feed.on_ticker("BTCUSDT", TickerData(symbol="BTCUSDT", fundingRate=1e-4, nextFundingTime=T))
    feed.on_subscribed("BTCUSDT")
    assert await feed.due("BTCUSDT", OPEN, CLOSE) == [ResolvedFunding(T, 1e-4, TICKER)]


async def test_candles_without_a_funding_time_ask_nothing() -> None:
    rest = FakeRest({T: 9e-4})
    feed = await feed_for(rest)
    assert await feed.due("BTCUSDT", OPEN - 60_000, OPEN) == []
    assert await feed.due("ETHUSDT", OPEN, CLOSE) == []  # not a perpetual of this feed
    assert rest.requests == []


async def test_an_announced_time_off_the_grid_is_settled_too() -> None:
    """The exchange shortened the interval: the stream names a time the 8 h grid does not have."""
    off_grid = T + 4 * HOUR
    feed = await feed_for(FakeRest({}))
    feed.on_ticker("BTCUSDT", TickerData(symbol="BTCUSDT", fundingRate=2e-4, nextFundingTime=off_grid))
    assert await feed.due("BTCUSDT", off_grid - 60_000, off_grid) == [ResolvedFunding(off_grid, 2e-4, TICKER)]


async def test_the_candle_feed_reports_ticker_subscriptions_links_and_refusals_to_the_funding_feed(
        caplog: pytest.LogCaptureFixture) -> None:
    """A refused ticker topic costs only the announcements (funding then comes from the
    history): the symbol is not marked as a feed problem."""
    from bot.bybit.feed import CandleFeed
    from bot.bybit.ws import Refusal
    from config.settings import FeedSettings

    funding = await feed_for(FakeRest({T: 9e-4}))
    feed = CandleFeed(ExchangeSettings(), FeedSettings(symbols=["BTCUSDT"]), FakeRest({}),  # type: ignore[arg-type]
                      funding=funding)
    feed.on_ticker("BTCUSDT", TickerData(symbol="BTCUSDT", fundingRate=1e-4, nextFundingTime=T))
    assert funding.announced("BTCUSDT") == (T, 1e-4)
    feed.on_subscribed(["tickers.BTCUSDT"])  # a new subscription: the old announcement may be stale
    assert await funding.due("BTCUSDT", OPEN, CLOSE) == [ResolvedFunding(T, 9e-4, HISTORY)]
    with caplog.at_level("WARNING"):
        feed.on_refused("tickers.BTCUSDT", Refusal("Invalid symbol", 1, 3, 0.5))
    assert feed.problems == {} and "its funding comes from the history" in caplog.text
