"""The websocket client's protocol behaviour and its clear errors, on real local sockets."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable

import pandas as pd
import pytest

from bot.bybit.feed import CandleFeed
from bot.bybit.markets import INTERVALS, kline_topic
from bot.bybit.parse import TopicTarget
from bot.bybit.rest import BybitRest
from bot.bybit.stats import FeedStats
from bot.bybit.ws import KlineStream, Refusal, StreamConnectError, SubscriptionError
from bot.replay.faults import parse_faults
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from config.settings import ExchangeSettings, FeedSettings
from env.types import Candle

M1 = INTERVALS["1m"]


class FixedClock:
    def now_ms(self) -> int:
        return 1_700_000_000_000


@pytest.fixture
async def server(btc_frame: pd.DataFrame) -> AsyncIterator[ReplayServer]:
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", btc_frame.iloc[:60])], history=20)
    async with ReplayServer(market, speed=100) as srv:
        yield srv


class Recorder:
    """A stream's listener that writes down what it is told."""

    def __init__(self, got: list[Candle], connected: list[int] | None = None) -> None:
        self.got = got
        self.connected = connected if connected is not None else []
        self.subscribed: list[list[str]] = []
        self.refusals: list[tuple[str, Refusal]] = []

    def on_candles(self, candles: list[Candle], received_ns: int) -> None:
        self.got.extend(candles)

    def on_subscribed(self, topics: list[str]) -> None:
        self.subscribed.append(topics)
        self.connected.append(len(self.got))

    def on_refused(self, topic: str, refusal: Refusal) -> None:
        self.refusals.append((topic, refusal))

    def on_link_changed(self) -> None:
        pass


def stream(exchange: ExchangeSettings, symbols: list[str], got: list[Candle], stats: FeedStats,
           connected: list[int] | None = None, *, listener: Recorder | None = None,
           attempts: int = 6) -> KlineStream:
    return KlineStream(
        exchange, {kline_topic(s, M1): TopicTarget(s, M1) for s in symbols},
        listener=listener or Recorder(got, connected), subscribe_attempts=attempts,
        stats=stats, clock=FixedClock(), rng=random.Random(0),
    )


async def test_stream_sends_only_subscribe_and_ping_and_hooks_run_in_order(
    server: ReplayServer, exchange_for: Callable[..., ExchangeSettings]
) -> None:
    got: list[Candle] = []
    connected: list[int] = []
    stats = FeedStats()
    task = asyncio.create_task(stream(exchange_for(server), ["BTCUSDT"], got, stats, connected).run())
    await asyncio.wait_for(server.finished.wait(), 10)
    await asyncio.sleep(0.3)  # a few pings after the last candle
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert connected == [0]  # backfill hook ran once, before any candle was handed on
    assert len(got) == 40 and stats.stream_candles == 40 and stats.messages > 40
    assert stats.last_message_ms == FixedClock().now_ms()
    ops = [op["op"] for op in server.ws_ops]
    assert set(ops) == {"subscribe", "ping"} and ops.count("ping") >= 2
    assert all(op.get("req_id") for op in server.ws_ops)


async def test_acks_without_req_id_complete_the_subscription(
    btc_frame: pd.DataFrame, exchange_for: Callable[..., ExchangeSettings], client_log: Callable[[], str]
) -> None:
    """Bybit's ``req_id`` is optional: acks that lack it answer the requests in order, so the
    stream is subscribed at once instead of waiting out open_timeout_s and reconnecting."""
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", btc_frame.iloc[:120])], history=20)
    async with ReplayServer(market, speed=40, faults=parse_faults(["noreqid"])) as server:
        got: list[Candle] = []
        connected: list[int] = []
        stats = FeedStats()
        task = asyncio.create_task(stream(exchange_for(server, open_timeout_s=1.0), ["BTCUSDT"], got, stats,
                                          connected).run())
        await asyncio.wait_for(server.finished.wait(), 10)  # 2.5 s: longer than open_timeout_s
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert connected == [0] and stats.connections == 1 and stats.reconnects == 0
    assert len(got) == 100 and "no subscribe ack" not in client_log()


async def test_a_refused_topic_is_retried_alone_then_dropped_while_the_others_stream(
    server: ReplayServer, exchange_for: Callable[..., ExchangeSettings]
) -> None:
    """Bybit refuses FOOUSDT by name in the same request that subscribes BTCUSDT: BTCUSDT
    streams every candle, FOOUSDT is tried alone after a back-off, then dropped."""
    got: list[Candle] = []
    recorder = Recorder(got)
    task = asyncio.create_task(stream(exchange_for(server), ["BTCUSDT", "FOOUSDT"], got, FeedStats(),
                                      listener=recorder, attempts=3).run())
    await asyncio.wait_for(server.finished.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert [c.open_time_ms for c in got] == [c.open_time_ms for c in got if c.symbol == "BTCUSDT"] and len(got) == 40
    assert recorder.subscribed == [["kline.1.BTCUSDT"]]
    assert [(t, r.refusals, r.dropped) for t, r in recorder.refusals] == [
        ("kline.1.FOOUSDT", 1, False), ("kline.1.FOOUSDT", 2, False), ("kline.1.FOOUSDT", 3, True)]
    assert all(r.reason == "Invalid symbol :[kline.1.FOOUSDT]" for _, r in recorder.refusals)
    subscribes = [op["args"] for op in server.ws_ops if op["op"] == "subscribe"]
    # BTCUSDT, which the refusal did not name, is asked again once (Bybit answers "already subscribed")
    assert subscribes == [["kline.1.BTCUSDT", "kline.1.FOOUSDT"], ["kline.1.BTCUSDT"], ["kline.1.FOOUSDT"],
                          ["kline.1.FOOUSDT"]]


async def test_a_feed_reader_learns_why_its_symbol_was_dropped(
    server: ReplayServer, exchange_for: Callable[..., ExchangeSettings]
) -> None:
    """The symbol exists (REST says so) but the server refuses the 5m topic: the reader learns why."""
    exchange = exchange_for(server)
    async with BybitRest(exchange) as rest, CandleFeed(
        exchange, FeedSettings(symbols=["BTCUSDT"], interval="5m", subscribe_attempts=2), rest
    ) as feed:
        dropped = r"kline\.5\.BTCUSDT .* 2 time\(s\): Invalid symbol .*dropped until"
        with pytest.raises(SubscriptionError, match=dropped):
            await asyncio.wait_for(anext(feed.candles("BTCUSDT")), 10)
        assert feed.problems["BTCUSDT"].state == "dropped"


async def test_wrong_websocket_path_is_a_clear_error(
    server: ReplayServer, exchange_for: Callable[..., ExchangeSettings]
) -> None:
    exchange = exchange_for(server, category="linear", ws_url=f"ws://127.0.0.1:{server.port}/realtime")
    with pytest.raises(StreamConnectError, match="refused the connection: HTTP 404"):
        await asyncio.wait_for(stream(exchange, ["BTCUSDT"], [], FeedStats()).run(), 10)


async def test_a_server_that_is_down_is_retried_with_back_off(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exchange = ExchangeSettings(ws_url=f"ws://127.0.0.1:{port}/v5/public/linear", ping_interval_s=0.1,
                                watchdog_s=0.4, backoff_min_s=0.01, backoff_max_s=0.02)
    stats = FeedStats()
    task = asyncio.create_task(stream(exchange, ["BTCUSDT"], [], stats).run())
    for _ in range(200):
        if stats.connect_failures >= 3:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert stats.connect_failures >= 3 and stats.connections == 0
    assert "connect failed" in caplog.text


async def test_a_websocket_403_is_waited_out_and_its_reason_kept(
    exchange_for: Callable[..., ExchangeSettings], server: ReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A region block answers the handshake with CloudFront's 403 page: the stream names it and
    waits forbidden_wait_s between tries instead of its short back-off."""
    from aiohttp import web

    async def blocked(request: web.Request) -> web.Response:
        return web.Response(status=403, text="<HTML><BODY><H1>403 ERROR</H1>The Amazon CloudFront distribution is "
                                             "configured to block access from your country.</BODY></HTML>")

    app = web.Application()
    app.router.add_get("/v5/public/linear", blocked)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    exchange = exchange_for(server, ws_url=f"ws://127.0.0.1:{port}/v5/public/linear", backoff_min_s=0.01,
                            backoff_max_s=0.02).model_copy(update={"forbidden_wait_s": 0.5})
    stats = FeedStats()
    kline_stream = stream(exchange, ["BTCUSDT"], [], stats)
    task = asyncio.create_task(kline_stream.run())
    await asyncio.sleep(1.2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await runner.cleanup()
    assert kline_stream.forbidden is not None and kline_stream.forbidden.where == "websocket"
    assert kline_stream.forbidden.reason == ("403 ERROR The Amazon CloudFront distribution is configured to block "
                                             "access from your country.")
    assert 2 <= stats.connect_failures <= 4  # one try per 0.5 s, not one per 10 ms
    assert "websocket answered HTTP 403 Forbidden" in caplog.text
