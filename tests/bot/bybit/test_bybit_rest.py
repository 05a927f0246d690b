"""REST backfill through ccxt against the replay server: pagination, closed candles only,
retries, clear errors, and no way to reach a private endpoint."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs, urlsplit

import ccxt.async_support as ccxt_async
import pandas as pd
import pytest

from bot.bybit.markets import INTERVALS, UnknownSymbolError
from bot.bybit.rest import PAGE_LIMIT, BybitRest, RestError
from bot.replay.faults import parse_faults
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from config.settings import ExchangeSettings
from env.types import Candle
from trainer.data.bybit_public import PrivateEndpointRefused

M1 = INTERVALS["1m"]
HISTORY = 2500  # closed candles on the server: three REST pages


@pytest.fixture
async def server(btc_candles: pd.DataFrame) -> AsyncIterator[ReplayServer]:
    """A server whose replay never starts (nobody subscribes): its clock stands still."""
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", btc_candles.iloc[:HISTORY + 10])], history=HISTORY)
    async with ReplayServer(market, speed=100) as srv:
        yield srv


@pytest.fixture
async def rest(server: ReplayServer, exchange_for: Callable[..., ExchangeSettings]) -> AsyncIterator[BybitRest]:
    async with BybitRest(exchange_for(server), rng=random.Random(0)) as client:
        yield client


def kline_queries(server: ReplayServer) -> list[dict[str, str]]:
    return [{k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
            for method, path in server.http_requests if path.startswith("/v5/market/kline")]


async def test_fetch_closed_pages_forward_and_returns_exactly_the_closed_candles(
    server: ReplayServer, rest: BybitRest, btc_candles: pd.DataFrame, as_candles: Callable[..., list[Candle]]
) -> None:
    backfill = await rest.fetch_closed("BTCUSDT", M1, int(btc_candles.open_time_ms.iloc[0]))

    assert backfill.candles == as_candles("BTCUSDT", btc_candles.iloc[:HISTORY])
    assert backfill.covered_until_ms == int(btc_candles.open_time_ms.iloc[HISTORY - 1])
    queries = kline_queries(server)
    assert len(queries) == 3
    for query in queries:  # explicit [start, end] windows of at most one page, on the right market
        assert M1.grid.steps(int(query["start"]), int(query["end"])) + 1 <= PAGE_LIMIT
        assert query["category"] == "linear" and query["interval"] == "1" and query["symbol"] == "BTCUSDT"


async def test_the_forming_candle_is_never_returned(
    server: ReplayServer, rest: BybitRest, btc_candles: pd.DataFrame, as_candles: Callable[..., list[Candle]]
) -> None:
    server.market.form(HISTORY, 0.5)  # half-way through candle HISTORY
    forming_open = int(btc_candles.open_time_ms.iloc[HISTORY])

    raw = await rest._exchange.fetch_ohlcv("BTC/USDT:USDT", "1m", since=forming_open - 60_000, limit=5)
    assert [row[0] for row in raw] == [forming_open - 60_000, forming_open]  # the server shows it, half-formed

    recent = await rest.fetch_recent("BTCUSDT", M1, 220)
    assert recent == as_candles("BTCUSDT", btc_candles.iloc[HISTORY - 220:HISTORY])


async def test_plain_ccxt_pages_through_the_server_in_windows(server: ReplayServer, btc_candles: pd.DataFrame) -> None:
    """What a trainer fetching history through ordinary ccxt (no key, no network) gets."""
    exchange = ccxt_async.bybit({"options": {"fetchMarkets": {"types": ["linear"]}}})
    exchange.urls["api"] = {name: server.rest_url for name in exchange.urls["api"]}
    first, step = int(btc_candles.open_time_ms.iloc[0]), 60_000
    try:
        # Bybit anchors a window wider than the limit at its end: the newest rows come back.
        wide = await exchange.fetch_ohlcv("BTC/USDT:USDT", "1m", since=first, limit=1000,
                                          params={"until": first + (HISTORY - 1) * step})
        assert wide[0][0] == first + (HISTORY - 1000) * step
        rows, since, last_closed = [], first, first + (HISTORY - 1) * step
        while since <= last_closed:
            rows += await exchange.fetch_ohlcv("BTC/USDT:USDT", "1m", since=since, limit=1000,
                                               params={"until": min(since + 999 * step, last_closed)})
            since += 1000 * step
    finally:
        await exchange.close()
    assert [row[0] for row in rows] == btc_candles.open_time_ms.iloc[:HISTORY].tolist()
    ohlcv = btc_candles[["open", "high", "low", "close", "volume"]].iloc[:HISTORY]
    assert [row[1:] for row in rows] == ohlcv.values.tolist()


async def test_rate_limit_beyond_the_attempts_is_a_clear_error(
    btc_candles: pd.DataFrame, exchange_for: Callable[..., ExchangeSettings]
) -> None:
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", btc_candles.iloc[:100])], history=50)
    async with (ReplayServer(market, speed=100, faults=parse_faults(["ratelimit:10"])) as server,
                BybitRest(exchange_for(server, rest_attempts=3), rng=random.Random(0)) as rest):
        with pytest.raises(RestError, match=r"rate-limited after 3 attempt\(s\)"):
            await rest.fetch_closed("BTCUSDT", M1, int(btc_candles.open_time_ms.iloc[0]))
        assert rest.stats.retries == 2


async def test_unknown_symbols_are_named_in_one_error(rest: BybitRest) -> None:
    with pytest.raises(UnknownSymbolError, match=r"'DOGEUSDT' is not a Bybit linear market.*'XRPUSDT'"):
        await rest.resolve(["BTCUSDT", "DOGEUSDT", "XRPUSDT"])


async def test_an_unreachable_server_is_a_clear_error_after_retries() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = ExchangeSettings(rest_url=f"http://127.0.0.1:{port}", rest_attempts=2, backoff_min_s=0.01,
                                backoff_max_s=0.02)
    async with BybitRest(settings) as rest:
        with pytest.raises(RestError, match=rf"127.0.0.1:{port}: load markets: network error after 2 attempt"):
            await rest.resolve(["BTCUSDT"])


async def test_no_private_endpoint_can_be_reached(server: ReplayServer, rest: BybitRest) -> None:
    await rest.resolve(["BTCUSDT"])
    assert not rest._exchange.apiKey and not rest._exchange.secret
    with pytest.raises(PrivateEndpointRefused, match="never trades"):
        await rest._exchange.create_order("BTC/USDT:USDT", "market", "buy", 0.001)
    with pytest.raises(PrivateEndpointRefused):
        await rest._exchange.fetch_balance()
    with pytest.raises(PrivateEndpointRefused):
        await rest._exchange.request("v5/order/create", "public", "POST", {"symbol": "BTCUSDT"})
    await rest.fetch_recent("BTCUSDT", M1, 10)

    public = {"/v5/market/kline", "/v5/market/time", "/v5/market/instruments-info"}
    assert server.http_requests and all(
        method == "GET" and urlsplit(path).path in public for method, path in server.http_requests
    )
