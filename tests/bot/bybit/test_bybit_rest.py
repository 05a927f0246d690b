"""REST backfill through ccxt against the replay server: pagination, closed candles only,
retries, clear errors, and no way to reach a private endpoint."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs, urlsplit

import ccxt.async_support as ccxt_async
import pandas as pd
import pytest

from bot.bybit.markets import INTERVALS, UnknownSymbolError
from bot.bybit.rest import PAGE_LIMIT, BybitRest, RestError, RestForbidden
from bot.replay.faults import parse_faults
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from config.settings import ExchangeSettings
from env.types import Candle
from trainer.data.bybit_public import PrivateEndpointRefused, forbidden_reason

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


async def test_http_403_stops_every_request_for_the_quiet_period_and_says_why(
    btc_candles: pd.DataFrame, exchange_for: Callable[..., ExchangeSettings], caplog: pytest.LogCaptureFixture
) -> None:
    """Bybit's 403 is an IP ban (or a blocked region), not a rate limit: both symbols' requests
    wait the default 10 minutes (a recording sleeper stands in for the clock), the reason is
    Bybit's, and the wait uses up none of the request's attempts."""
    market = ReplayMarket([ReplaySeries.from_frame(s, btc_candles.iloc[:100]) for s in ("BTCUSDT", "ETHUSDT")],
                          history=50)
    waits: list[tuple[float, str | None]] = []
    async with ReplayServer(market, speed=100, faults=parse_faults(["forbidden:1"])) as server:
        exchange = exchange_for(server, rest_attempts=1).model_copy(update={"forbidden_wait_s": 600.0})

        async def sleep(seconds: float) -> None:
            waits.append((seconds, rest.forbidden.describe() if rest.forbidden else None))

        async with BybitRest(exchange, rng=random.Random(0), sleep=sleep) as rest:
            await rest.resolve(["BTCUSDT", "ETHUSDT"])  # the 403 hits here: markets are loaded first
            got = await asyncio.gather(*(rest.fetch_closed(s, M1, int(btc_candles.open_time_ms.iloc[0]))
                                         for s in ("BTCUSDT", "ETHUSDT")))
            assert rest.forbidden is None  # answered again: the quiet period is over
    assert [len(b.candles) for b in got] == [50, 50]
    assert rest.stats.forbidden == 1 and rest.stats.retries == 0
    assert [round(s) for s, _ in waits] == [600]
    assert waits[0][1] is not None and waits[0][1].startswith(
        "Bybit REST answered HTTP 403 Forbidden (access too frequent): an IP ban (more than 600 requests in 5 s) "
        "or a blocked region; Bybit asks clients to stop every request for at least 10 minutes; nothing is sent until")
    assert "HTTP 403 Forbidden (access too frequent)" in caplog.text and "requests resume" in caplog.text


async def test_a_one_shot_client_reports_the_403_at_once(
    btc_candles: pd.DataFrame, exchange_for: Callable[..., ExchangeSettings]
) -> None:
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", btc_candles.iloc[:100])], history=50)
    async with ReplayServer(market, speed=100, faults=parse_faults(["forbidden:5"])) as server:
        async with BybitRest(exchange_for(server), wait_out_403=False) as rest:
            with pytest.raises(RestForbidden, match=r"server time: HTTP 403 Forbidden \(access too frequent\): an IP "
                                                    r"ban .* at least 10 minutes$"):
                await rest.server_time_ms()
        assert len(server.http_requests) == 1  # no retry: Bybit asks for quiet


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("access too frequent", "access too frequent"),
        ('{"retCode":10009,"retMsg":"IP has been banned","result":{},"time":1}', "IP has been banned (retCode 10009)"),
        # CloudFront's region block, as recorded by users of Bybit's API (HTML, newlines and entities)
        (('<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">\n<HTML><HEAD><TITLE>ERROR: The request '
          'could not be satisfied</TITLE></HEAD><BODY>\n<H1>403 ERROR</H1>\n<H2>The request could not be satisfied.'
          '</H2>\n<HR noshade size="1px">\nThe Amazon CloudFront distribution is configured to block access from your '
          'country.\nWe can&#39;t connect to the server for this app or website at this time.'),
         ("403 ERROR The request could not be satisfied. The Amazon CloudFront distribution is configured to block "
          "access from your country. We can't connect to the server for this app or website at this time.")),
        ("", "no reason given"),
    ],
    ids=["text", "json", "cloudfront-html", "empty"],
)
def test_the_403_reason_is_read_from_any_body(body: str, reason: str) -> None:
    assert forbidden_reason(body) == reason
