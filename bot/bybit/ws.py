"""Bybit v5 public kline stream: one websocket for every topic, kept alive for good.

The loop is websockets' own reconnecting iterator (``async for ws in connect(...)``),
which backs off between failed connection attempts. Around it:

- every (re)connection subscribes to all topics (spot in requests of at most 10 args)
  and checks each ack; a refused topic (unknown symbol) is fatal: :class:`SubscriptionError`;
- once every ack is in, ``on_connected()`` runs *before* any further message is
  processed, so the owner can start the REST backfill of whatever was missed;
- a JSON ``{"op": "ping"}`` goes out every ``ping_interval_s`` (Bybit's keepalive is at
  the JSON level, so websockets' protocol pings are off) and a watchdog closes a
  connection that has been silent for ``watchdog_s``;
- a connection that drops before delivering any data waits a jittered exponential
  back-off before the next one, so a server that accepts and drops cannot make us spin;
- malformed messages and pushes for unknown topics are logged and skipped.

Only ``subscribe`` and ``ping`` ops are ever sent: this client cannot trade.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Generator, Mapping
from itertools import count

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.client import process_exception as default_process_exception
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bot.backoff import jittered_backoff
from bot.bybit.parse import MalformedMessage, TopicTarget, UnknownTopic, closed_candles, decode
from bot.bybit.schemas import KlinePush, OpReply
from bot.bybit.stats import FeedStats
from config.errors import UserError
from config.settings import ExchangeSettings
from env.types import Candle
from state.clock import Clock

log = logging.getLogger(__name__)

# Bybit caps a spot subscribe request at 10 args; linear only caps the args' total length.
SUBSCRIBE_CHUNK = {"spot": 10, "linear": 200}

OnCandles = Callable[[list[Candle], int], None]


class SubscriptionError(UserError):
    """Bybit refused a subscription (e.g. an unknown symbol); retrying would not help."""


class StreamConnectError(UserError):
    """The websocket URL answers, but not as a Bybit stream (e.g. HTTP 404)."""


class KlineStream:
    """Keeps one websocket subscribed to ``topics`` and hands closed candles to ``on_candles``.

    Args:
        exchange: ``[exchange]`` settings (URL, category, ping, watchdog, timeouts, back-off).
        topics: ``kline.{interval}.{symbol}`` topic -> the symbol and interval it carries.
        on_candles: called with the confirmed candles of one message and the
            ``time.perf_counter_ns()`` of its arrival. Must not block.
        on_connected: called once per connection after all acks, before further messages.
        stats: counters to update.
        clock: stamps ``stats.last_message_ms``.
        rng: randomness of the back-off jitter.
    """

    def __init__(
        self,
        exchange: ExchangeSettings,
        topics: Mapping[str, TopicTarget],
        *,
        on_candles: OnCandles,
        on_connected: Callable[[], None],
        stats: FeedStats,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self._settings = exchange
        self._topics = dict(topics)
        self._on_candles = on_candles
        self._on_connected = on_connected
        self.stats = stats
        self._clock = clock
        self._rng = rng
        self._pushes = 0
        self._closed_by_us = False  # the watchdog closed the current connection (and logged why)
        self._last_message_at = 0.0  # event-loop time of the last message on the current connection
        self._requests: dict[str, list[str]] = {}  # subscribe req_id -> its topics

    async def run(self) -> None:
        """Stream until cancelled.

        Raises:
            SubscriptionError: the server refused a topic.
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
                reconnect_delays=self._backoff,
                process_exception=self._retryable,
                logger=log,
            ):
                self.stats.connections += 1
                pushes_before = self._pushes
                try:
                    await self._session(ws)
                except ConnectionClosed as exc:
                    log.warning("websocket connection lost (%s); reconnecting", _close_reason(exc))
                else:
                    if not self._closed_by_us:
                        log.warning("websocket closed by the server (code %s %s); reconnecting",
                                    ws.close_code, ws.close_reason or "")
                await ws.close()
                if self._pushes > pushes_before:  # it delivered data: a healthy connection
                    drop_delays = self._backoff()
                delay = next(drop_delays)
                self.stats.reconnects += 1
                log.info("reconnecting in %.2fs", delay)
                await asyncio.sleep(delay)
        except InvalidStatus as exc:
            raise StreamConnectError(
                f"websocket {settings.ws_url} refused the connection: HTTP {exc.response.status_code}"
            ) from None

    def _backoff(self) -> Generator[float, None, None]:
        return jittered_backoff(self._settings.backoff_min_s, self._settings.backoff_max_s, self._rng)

    def _retryable(self, exc: Exception) -> Exception | None:
        verdict = default_process_exception(exc)
        if verdict is None:
            self.stats.connect_failures += 1
            log.warning("websocket %s: connect failed (%s); retrying with back-off", self._settings.ws_url, exc)
        return verdict

    async def _session(self, ws: ClientConnection) -> None:
        """Subscribe, keep alive and read one connection until it closes."""
        acks_due = await self._subscribe(ws)
        self._closed_by_us = False
        self._last_message_at = asyncio.get_running_loop().time()
        helpers = [asyncio.create_task(self._ping_forever(ws), name="bybit-ping"),
                   asyncio.create_task(self._watch(ws, acks_due), name="bybit-watchdog")]
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
                elif isinstance(message, OpReply) and message.op == "subscribe" and acks_due:
                    req_id = self._answered_request(message, acks_due)
                    self._check_ack(message, req_id)
                    acks_due.discard(req_id)
                    if not acks_due:
                        self.stats.connected = True
                        self._on_connected()
        finally:
            self.stats.connected = False
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _watch(self, ws: ClientConnection, acks_due: set[str]) -> None:
        """Close the connection when the acks are late or when it has gone silent.

        One task per connection instead of a timeout around every ``recv()``: arming and
        cancelling a timer per message would cost more than parsing the message.
        """
        loop = asyncio.get_running_loop()
        settings = self._settings
        ack_deadline = loop.time() + settings.open_timeout_s
        while True:
            now = loop.time()
            if acks_due and now >= ack_deadline:
                log.warning("no subscribe ack within %.1fs (missing %s); reconnecting",
                            settings.open_timeout_s, ", ".join(sorted(acks_due)))
                break
            if now - self._last_message_at >= settings.watchdog_s:
                self.stats.watchdog_closes += 1
                log.warning("websocket silent for %.1fs (watchdog); closing it to reconnect", settings.watchdog_s)
                break
            wake = self._last_message_at + settings.watchdog_s
            await asyncio.sleep((min(wake, ack_deadline) if acks_due else wake) - now)
        self._closed_by_us = True
        await ws.close()

    async def _subscribe(self, ws: ClientConnection) -> set[str]:
        topics = list(self._topics)
        size = SUBSCRIBE_CHUNK[self._settings.category]
        self._requests = {
            f"sub-{self.stats.connections}-{n}": topics[first:first + size]
            for n, first in enumerate(range(0, len(topics), size))
        }
        for req_id, args in self._requests.items():
            await ws.send(json.dumps({"req_id": req_id, "op": "subscribe", "args": args}))
        log.info("subscribing to %d topic(s) on %s", len(topics), self._settings.ws_url)
        return set(self._requests)

    async def _ping_forever(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            for n in count(1):
                await asyncio.sleep(self._settings.ping_interval_s)
                await ws.send(json.dumps({"req_id": f"ping-{n}", "op": "ping"}))

    def _decode(self, raw: str | bytes) -> KlinePush | OpReply | None:
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
            self._on_candles(candles, received_ns)

    def _answered_request(self, ack: OpReply, acks_due: set[str]) -> str:
        """The request an ack answers: the one it names, else the oldest unanswered one
        (``req_id`` is optional in Bybit's acks, and a connection answers in order)."""
        if ack.req_id is not None and ack.req_id in acks_due:
            return ack.req_id
        return next(req_id for req_id in self._requests if req_id in acks_due)

    def _check_ack(self, ack: OpReply, req_id: str) -> None:
        if ack.success is False:
            topics = self._requests.get(req_id, [])
            raise SubscriptionError(
                f"Bybit refused the subscription to {', '.join(topics) or 'kline topics'} on {self._settings.ws_url}: "
                f"{ack.ret_msg or 'no reason given'} (check [feed] symbols and interval)"
            )


def _close_reason(exc: ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    return f"code {frame.code} {frame.reason}".strip() if frame else "no close frame"

