"""Bybit v5 public kline stream: one websocket for a set of topics, kept alive for good.

The loop is websockets' own reconnecting iterator (``async for ws in connect(...)``),
which backs off between failed connection attempts. Around it:

- every (re)connection subscribes to its topics in requests that respect Bybit's caps
  (:mod:`bot.bybit.subscriptions`) and reads every ack, matched by ``req_id`` or, when an
  ack carries none, to the oldest unanswered request;
- **a refused topic never stops the others**: the topics Bybit refuses (a delisted or
  unknown symbol) are retried alone after a jittered back-off, up to ``[feed]
  subscribe_attempts`` refusals, then dropped until restart; the listener hears of each;
- once the first acks of a connection are in, ``listener.subscribed(topics)`` runs
  *before* any further message is processed, so the owner can start the REST backfill of
  whatever was missed (and again for a topic whose retry succeeds later);
- a JSON ``{"op": "ping"}`` goes out every ``ping_interval_s`` (Bybit's keepalive is at
  the JSON level, so websockets' protocol pings are off) and a watchdog closes a
  connection that has been silent for ``watchdog_s`` or whose acks are late;
- a connection that drops before delivering any data waits a jittered exponential
  back-off before the next one, so a server that accepts and drops cannot make us spin;
- an HTTP 403 on connect (an IP ban or a blocked region) is waited out for
  ``forbidden_wait_s`` (Bybit asks for 10 minutes), with :attr:`KlineStream.forbidden`
  saying why;
- malformed messages and pushes for unknown topics are logged and skipped;
- a perpetual's ``tickers.{symbol}`` topics, when given, ride on the same connection and
  each push is handed to ``listener.on_ticker`` (the funding feed, :mod:`bot.bybit.funding`).

Only ``subscribe`` and ``ping`` ops are ever sent: this client cannot trade.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from itertools import count
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.client import process_exception as default_process_exception
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bot.backoff import jittered_backoff
from bot.bybit.forbidden import Forbidden
from bot.bybit.parse import MalformedMessage, TopicTarget, UnknownTopic, closed_candles, decode
from bot.bybit.schemas import KlinePush, OpReply, TickerData, TickerPush
from bot.bybit.stats import FeedStats
from bot.bybit.subscriptions import plan_requests, read_ack
from config.errors import UserError
from config.settings import ExchangeSettings
from env.types import Candle
from state.clock import Clock
from trainer.data.bybit_public import forbidden_reason

log = logging.getLogger(__name__)

class SubscriptionError(UserError):
    """Bybit refused a topic ``[feed] subscribe_attempts`` times: it is dropped until restart."""


class StreamConnectError(UserError):
    """The websocket URL answers, but not as a Bybit stream (e.g. HTTP 404)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Bybit refused a topic's subscription.

    Attributes:
        reason: Bybit's ``ret_msg``.
        refusals: how many times in a row it was refused.
        attempts: refusals after which the topic is dropped.
        retry_in_s: when it is tried again; ``None`` once it is dropped.
    """

    reason: str
    refusals: int
    attempts: int
    retry_in_s: float | None

    @property
    def dropped(self) -> bool:
        return self.retry_in_s is None


class StreamListener(Protocol):
    """What a :class:`KlineStream` tells its owner (the feed). Calls must not block."""

    def on_candles(self, candles: list[Candle], received_ns: int) -> None:
        """The confirmed candles of one message and the ``perf_counter_ns`` of its arrival."""

    def on_subscribed(self, topics: list[str]) -> None:
        """``topics`` stream now (a connection's first acks, or a retry that succeeded)."""

    def on_refused(self, topic: str, refusal: Refusal) -> None:
        """Bybit refused ``topic``; it is retried later or, once dropped, never again."""

    def on_link_changed(self) -> None:
        """The stream's :attr:`~KlineStream.up` flag changed."""

    def on_ticker(self, symbol: str, data: TickerData) -> None:
        """A ``tickers`` push of ``symbol`` (only for a stream given ``tickers``)."""


@dataclass(slots=True)
class _Request:
    """A subscribe request waiting for its ack."""

    topics: list[str]
    deadline: float  # event-loop time by which its ack is due
    first: bool  # one of the connection's first requests (they report ``on_subscribed`` together)


class KlineStream:
    """Keeps one websocket subscribed to ``topics`` and tells ``listener`` what happens.

    Args:
        exchange: ``[exchange]`` settings (URL, category, ping, watchdog, timeouts, back-off).
        topics: ``kline.{interval}.{symbol}`` topic -> the symbol and interval it carries;
            at most one connection's worth (:func:`bot.bybit.subscriptions.plan_connections`).
        listener: told of candles, subscriptions, refusals and the link going up or down.
        subscribe_attempts: refusals of one topic before it is dropped until restart.
        stats: counters to update (shared by every stream of a feed).
        clock: stamps ``stats.last_message_ms``.
        rng: randomness of the back-off jitter.
        name: for log lines (``"stream 2/3"``).
        tickers: ``tickers.{symbol}`` topic -> symbol, subscribed beside the klines (a
            perpetual's funding announcements); their pushes go to ``listener.on_ticker``.
    """

    def __init__(
        self,
        exchange: ExchangeSettings,
        topics: Mapping[str, TopicTarget],
        *,
        listener: StreamListener,
        subscribe_attempts: int,
        stats: FeedStats,
        clock: Clock,
        rng: random.Random,
        name: str = "stream",
        tickers: Mapping[str, str] | None = None,
    ) -> None:
        self._settings = exchange
        self._topics = dict(topics)
        self._tickers = dict(tickers or {})
        self._listener = listener
        self._attempts = subscribe_attempts
        self.stats = stats
        self._clock = clock
        self._rng = rng
        self.name = name
        self.up = False  # subscribed on an open connection now
        self._pushes = 0
        self._closed_by_us = False  # the watchdog closed the current connection (and logged why)
        self._last_message_at = 0.0  # event-loop time of the last message on the current connection
        self._pending: dict[str, _Request] = {}  # req_id -> request awaiting its ack, oldest first
        self._first_subscribed: list[str] = []  # topics the first acks of this connection accepted
        self._req_ids = count(1)
        self._refusals: dict[str, int] = {}  # topic -> refusals in a row
        self._retry_delays: dict[str, Generator[float, None, None]] = {}
        self._dropped: set[str] = set()
        self._retries: set[asyncio.Task[None]] = set()
        self.forbidden: Forbidden | None = None  # the 403 being waited out, if any

    @property
    def topics(self) -> list[str]:
        """Every topic this stream carries (dropped ones included)."""
        return [*self._topics, *self._tickers]

    @property
    def live(self) -> bool:
        """Some topic has not been dropped: the stream keeps (re)connecting."""
        return bool(self._live_topics())

    async def run(self) -> None:
        """Stream until cancelled, or until every topic has been dropped.

        Raises:
            StreamConnectError: the server refused the websocket itself (not transient).
        """
        settings = self._settings
        drop_delays = self._backoff()
        try:
            async for ws in connect(
                settings.ws_url,
                open_timeout=settings.open_timeout_s,
                close_timeout=settings.open_timeout_s,
                ping_interval=None,  # Bybit's keepalive is the JSON ping below
                reconnect_delays=self._reconnect_delays,
                process_exception=self._retryable,
                logger=log,
            ):
                self.stats.connections += 1
                self.forbidden = None
                pushes_before = self._pushes
                try:
                    await self._session(ws)
                except ConnectionClosed as exc:
                    log.warning("%s: websocket connection lost (%s); reconnecting", self.name, _close_reason(exc))
                else:
                    if not self._closed_by_us and self._live_topics():
                        log.warning("%s: websocket closed by the server (code %s %s); reconnecting",
                                    self.name, ws.close_code, ws.close_reason or "")
                await ws.close()
                if not self._live_topics():
                    log.error("%s: every topic was dropped; closing the connection", self.name)
                    return
                if self._pushes > pushes_before:  # it delivered data: a healthy connection
                    drop_delays = self._backoff()
                delay = next(drop_delays)
                self.stats.reconnects += 1
                log.info("%s: reconnecting in %.2fs", self.name, delay)
                await asyncio.sleep(delay)
        except InvalidStatus as exc:
            raise StreamConnectError(
                f"websocket {settings.ws_url} refused the connection: HTTP {exc.response.status_code}"
            ) from None

    def _backoff(self) -> Generator[float, None, None]:
        return jittered_backoff(self._settings.backoff_min_s, self._settings.backoff_max_s, self._rng)

    def _reconnect_delays(self) -> Generator[float, None, None]:
        """websockets' delays between failed connects: the back-off, or a 403's quiet period."""
        backoff = self._backoff()
        while True:
            yield self._settings.forbidden_wait_s if self.forbidden is not None else next(backoff)

    def _retryable(self, exc: Exception) -> Exception | None:
        if isinstance(exc, InvalidStatus) and exc.response.status_code == 403:
            body = exc.response.body.decode("utf-8", "replace") if exc.response.body else ""
            self.forbidden = Forbidden("websocket", self._settings.ws_url, forbidden_reason(body),
                                       self._clock.now_ms() + int(self._settings.forbidden_wait_s * 1000))
            self.stats.connect_failures += 1
            log.error("%s: %s", self.name, self.forbidden.describe())
            return None
        verdict = default_process_exception(exc)
        if verdict is None:
            self.stats.connect_failures += 1
            log.warning("%s: websocket %s: connect failed (%s); retrying with back-off",
                        self.name, self._settings.ws_url, exc)
        return verdict

    def _live_topics(self) -> list[str]:
        return [t for t in self.topics if t not in self._dropped]

    def _set_up(self, up: bool) -> None:
        if up != self.up:
            self.up = up
            self._listener.on_link_changed()

    # -- one connection ----------------------------------------------------------------

    async def _session(self, ws: ClientConnection) -> None:
        """Subscribe, keep alive and read one connection until it closes."""
        self._pending.clear()
        self._first_subscribed = []
        self._closed_by_us = False
        self._last_message_at = asyncio.get_running_loop().time()
        topics = self._live_topics()
        klines = [t for t in topics if t in self._topics]
        for group in (klines, [t for t in topics if t in self._tickers]):  # tickers in requests of their own
            for args in plan_requests(group, self._settings.category):
                await self._subscribe(ws, args, first=True)
        log.info("%s: subscribing to %d topic(s) on %s", self.name, len(topics), self._settings.ws_url)
        helpers = [asyncio.create_task(self._ping_forever(ws), name="bybit-ping"),
                   asyncio.create_task(self._watch(ws), name="bybit-watchdog")]
        try:
            async for raw in ws:
                received_ns = time.perf_counter_ns()
                self._last_message_at = asyncio.get_running_loop().time()
                self.stats.messages += 1
                self.stats.last_message_ms = self._clock.now_ms()
                message = self._decode(raw)
                if isinstance(message, KlinePush):
                    self._pushes += 1
                    self._handle_push(message, received_ns)
                elif isinstance(message, TickerPush):
                    self._handle_ticker(message)
                elif isinstance(message, OpReply) and message.op == "subscribe" and self._pending:
                    await self._handle_ack(ws, message)
                    if not self._live_topics():  # only an ack's refusals drop topics
                        break
        finally:
            self._set_up(False)
            for task in (*helpers, *self._retries):
                task.cancel()
            await asyncio.gather(*helpers, *self._retries, return_exceptions=True)
            self._retries.clear()

    async def _subscribe(self, ws: ClientConnection, topics: list[str], *, first: bool) -> None:
        req_id = f"sub-{self.stats.connections}-{next(self._req_ids)}"
        deadline = asyncio.get_running_loop().time() + self._settings.open_timeout_s
        self._pending[req_id] = _Request(topics, deadline, first)
        await ws.send(json.dumps({"req_id": req_id, "op": "subscribe", "args": topics}))

    async def _handle_ack(self, ws: ClientConnection, ack: OpReply) -> None:
        request = self._pending.pop(self._answered_request(ack))
        verdict = read_ack(request.topics, ack.success, ack.ret_msg)
        for topic in verdict.subscribed:
            self._refusals.pop(topic, None)
            self._retry_delays.pop(topic, None)
        for topic in verdict.refused:
            self._refuse(ws, topic, verdict.reason)
        if verdict.resend:
            await self._subscribe(ws, verdict.resend, first=request.first)
        if not request.first:
            if verdict.subscribed:
                self._listener.on_subscribed(verdict.subscribed)
            return
        self._first_subscribed += verdict.subscribed
        if not any(r.first for r in self._pending.values()):
            self._set_up(True)
            self._listener.on_subscribed(self._first_subscribed)

    def _answered_request(self, ack: OpReply) -> str:
        """The request an ack answers: the one it names, else the oldest unanswered one
        (``req_id`` is optional in Bybit's acks, and a connection answers in order)."""
        if ack.req_id is not None and ack.req_id in self._pending:
            return ack.req_id
        return next(iter(self._pending))

    def _refuse(self, ws: ClientConnection, topic: str, reason: str) -> None:
        """Count a refusal: retry ``topic`` alone after a back-off, or drop it for good."""
        self.stats.subscribe_refusals += 1
        refusals = self._refusals[topic] = self._refusals.get(topic, 0) + 1
        if refusals >= self._attempts:
            self._dropped.add(topic)
            self._listener.on_refused(topic, Refusal(reason, refusals, self._attempts, None))
            return
        delay = next(self._retry_delays.setdefault(topic, self._backoff()))
        self._listener.on_refused(topic, Refusal(reason, refusals, self._attempts, delay))
        retry = asyncio.create_task(self._retry_later(ws, topic, delay), name=f"bybit-resubscribe-{topic}")
        self._retries.add(retry)
        retry.add_done_callback(self._retries.discard)

    async def _retry_later(self, ws: ClientConnection, topic: str, delay: float) -> None:
        await asyncio.sleep(delay)
        with contextlib.suppress(ConnectionClosed):  # the next connection subscribes it anyway
            await self._subscribe(ws, [topic], first=False)

    async def _watch(self, ws: ClientConnection) -> None:
        """Close the connection when an ack is late or when it has gone silent.

        One task per connection instead of a timeout around every ``recv()``: arming and
        cancelling a timer per message would cost more than parsing the message. It wakes
        at least every ``open_timeout_s``, so the ack of a later request is checked in time.
        """
        loop = asyncio.get_running_loop()
        settings = self._settings
        while True:
            now = loop.time()
            late = [req_id for req_id, request in self._pending.items() if now >= request.deadline]
            if late:
                log.warning("%s: no subscribe ack within %.1fs (missing %s); reconnecting",
                            self.name, settings.open_timeout_s, ", ".join(late))
                break
            if now - self._last_message_at >= settings.watchdog_s:
                self.stats.watchdog_closes += 1
                log.warning("%s: websocket silent for %.1fs (watchdog); closing it to reconnect",
                            self.name, settings.watchdog_s)
                break
            wake = min([self._last_message_at + settings.watchdog_s, now + settings.open_timeout_s,
                        *(request.deadline for request in self._pending.values())])
            await asyncio.sleep(wake - now)
        self._closed_by_us = True
        await ws.close()

    async def _ping_forever(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            for n in count(1):
                await asyncio.sleep(self._settings.ping_interval_s)
                await ws.send(json.dumps({"req_id": f"ping-{n}", "op": "ping"}))

    def _decode(self, raw: str | bytes) -> KlinePush | TickerPush | OpReply | None:
        try:
            return decode(raw)
        except MalformedMessage as exc:
            self.stats.malformed += 1
            log.warning("skipped malformed message: %s", exc)
            return None

    def _handle_push(self, push: KlinePush, received_ns: int) -> None:
        try:
            candles = closed_candles(push, self._topics)
        except UnknownTopic as exc:
            self.stats.unknown_topics += 1
            log.warning("skipped message: %s", exc)
            return
        except MalformedMessage as exc:
            self.stats.malformed += 1
            log.warning("skipped malformed message: %s", exc)
            return
        if candles:
            self.stats.stream_candles += len(candles)
            self._listener.on_candles(candles, received_ns)

    def _handle_ticker(self, push: TickerPush) -> None:
        symbol = self._tickers.get(push.topic)
        if symbol is None:
            self.stats.unknown_topics += 1
            log.warning("skipped message: push for unsubscribed topic %r", push.topic)
            return
        self._listener.on_ticker(symbol, push.data)


def _close_reason(exc: ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    return f"code {frame.code} {frame.reason}".strip() if frame else "no close frame"
