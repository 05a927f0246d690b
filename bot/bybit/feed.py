"""The live candle feed: every configured symbol's closed candles, in order, once each.

It wires three parts together:

- one :class:`~bot.bybit.ws.KlineStream` per websocket connection pushes confirmed
  candles as they close; the topics are spread over as many connections as Bybit's
  21,000-characters-of-args limit needs (:func:`~bot.bybit.subscriptions.plan_connections`);
- one :class:`~bot.bybit.sequencer.CandleSequencer` per symbol releases them in order,
  drops duplicates and holds back whatever arrives after a hole;
- one backfill task per symbol fills holes over REST: after every (re)connect (the
  candles missed while disconnected) and whenever the stream skips a candle.

Per-symbol queues and tasks mean a symbol whose backfill is slow or failing never holds
up another, and a symbol Bybit refuses to stream (delisted, unknown) never stops the
others: it is retried, then dropped (its reader gets a :class:`SubscriptionError`), and
:attr:`CandleFeed.problems` says which and why. The consumer (the daemon's engine) reads
``feed.candles(symbol)``.

Given a :class:`~bot.bybit.funding.FundingFeed`, the streams also carry its symbols'
``tickers`` topics (the funding announcements): the funding feed hears of every push, of
every (re)subscription of a ticker topic and of every connection that carries one going
down, which is how it knows whether an announcement can still be trusted.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from bot.backoff import jittered_backoff
from bot.bybit.forbidden import Forbidden
from bot.bybit.funding import FundingFeed
from bot.bybit.markets import Interval, interval, kline_topic, ticker_topic
from bot.bybit.parse import TopicTarget
from bot.bybit.rest import BybitRest, RestError
from bot.bybit.schemas import TickerData
from bot.bybit.sequencer import CandleSequencer, FeedCandle, Offer
from bot.bybit.stats import FeedStats
from bot.bybit.subscriptions import plan_connections
from bot.bybit.ws import KlineStream, Refusal, SubscriptionError
from config.settings import ExchangeSettings, FeedSettings
from env.candles import format_ms
from env.types import Candle
from state.clock import Clock, SystemClock
from state.records import FeedProblem

log = logging.getLogger(__name__)


class FeedStopped(Exception):
    """The feed has been closed; no more candles will come."""


OnProblem = Callable[[str, FeedProblem | None], None]
"""Told when a symbol's problem starts, changes or ends (``None``: streaming again)."""


@dataclass(slots=True)
class _Symbol:
    """Everything the feed keeps for one symbol."""

    name: str
    sequencer: CandleSequencer
    queue: asyncio.Queue[FeedCandle | BaseException] = field(default_factory=asyncio.Queue)
    backfill_wanted: asyncio.Event = field(default_factory=asyncio.Event)
    reconnected: bool = False  # a (re)connect happened: fetch up to now even without a visible gap


class CandleFeed:
    """Closed candles of ``feed.symbols`` from Bybit (or a replay server), gap-free and in order.

    Args:
        exchange: ``[exchange]`` settings.
        feed: ``[feed]`` settings (symbols and interval).
        rest: an open REST client for the same exchange and category; not closed here.
        resume_after: per symbol, the open time (ms) of the last candle the consumer
            already has; the feed starts right after it and backfills up to now. A symbol
            without one starts at the first candle the stream confirms.
        clock: wall (or virtual) time for the stats.
        rng: randomness of the back-off jitter.
        on_problem: told when a symbol's problem starts, changes or ends.
        funding: a perpetual's funding feed: its symbols' tickers are subscribed and reported to it.

    Use::

        async with BybitRest(settings.exchange) as rest, CandleFeed(settings.exchange, settings.feed, rest) as feed:
            async for item in feed.candles("BTCUSDT"):
                ...

    .. warning:: A symbol's queue is unbounded: read every symbol you configured.
    """

    def __init__(
        self,
        exchange: ExchangeSettings,
        feed: FeedSettings,
        rest: BybitRest,
        *,
        resume_after: Mapping[str, int] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_problem: OnProblem | None = None,
        funding: FundingFeed | None = None,
    ) -> None:
        self.interval: Interval = interval(feed.interval)
        self.stats = FeedStats()
        self.problems: dict[str, FeedProblem] = {}  # symbols Bybit refuses to stream now
        self._exchange = exchange
        self._rest = rest
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._on_problem = on_problem
        self._funding = funding
        resume_after = resume_after or {}
        self._symbols = {
            name: _Symbol(name, CandleSequencer(self.interval.grid, resume_after.get(name))) for name in feed.symbols
        }
        self._klines = {kline_topic(name, self.interval): name for name in feed.symbols}
        self._tickers = {ticker_topic(name): name for name in funding.symbols} if funding is not None else {}
        self._by_topic = self._klines | self._tickers
        plan = plan_connections(list(self._by_topic))
        self._streams = [
            KlineStream(exchange, {t: TopicTarget(self._klines[t], self.interval) for t in topics if t in self._klines},
                        listener=self, subscribe_attempts=feed.subscribe_attempts, stats=self.stats,
                        clock=self._clock, rng=self._rng, name=f"stream {n}/{len(plan)}",
                        tickers={t: self._tickers[t] for t in topics if t in self._tickers})
            for n, topics in enumerate(plan, 1)
        ]
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> CandleFeed:
        await self._rest.resolve(list(self._symbols))  # unknown symbols fail here, clearly
        if len(self._streams) > 1:
            log.info("%d topics over %d websocket connections (Bybit allows 21,000 characters of args per connection)",
                     len(self._by_topic), len(self._streams))
        self._tasks = [asyncio.create_task(self._stream_forever(stream), name=f"feed-{stream.name}")
                       for stream in self._streams]
        self._tasks += [
            asyncio.create_task(self._backfill_forever(state), name=f"feed-backfill-{state.name}")
            for state in self._symbols.values()
        ]
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_all(FeedStopped("the candle feed is closed"))

    async def candles(self, symbol: str) -> AsyncIterator[FeedCandle]:
        """``symbol``'s closed candles, in open-time order, each exactly once.

        Raises:
            SubscriptionError: Bybit kept refusing the symbol; it is dropped until restart.
            StreamConnectError: the stream failed for good.
            FeedStopped: the feed was closed.
        """
        state = self._symbols[symbol]
        while True:
            item = await state.queue.get()
            if isinstance(item, BaseException):
                state.queue.put_nowait(item)  # every later read fails the same way
                raise item
            yield item

    # -- stream side ---------------------------------------------------------------

    async def _stream_forever(self, stream: KlineStream) -> None:
        try:
            await stream.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # fatal: StreamConnectError, or a bug
            log.error("%s: candle stream stopped: %s", stream.name, exc)
            for topic in stream.topics:
                self._symbols[self._by_topic[topic]].queue.put_nowait(exc)

    # -- what the streams tell (bot.bybit.ws.StreamListener) ------------------------------

    def on_subscribed(self, topics: list[str]) -> None:
        """A (re)connect or a successful retry: backfill what was missed, before the
        stream's candles go out (and a new ticker subscription starts a new announcement)."""
        for topic in topics:
            if topic in self._tickers:
                if self._funding is not None:
                    self._funding.on_subscribed(self._tickers[topic])
                continue
            state = self._symbols[self._by_topic[topic]]
            state.reconnected = True
            state.backfill_wanted.set()
            if self.problems.pop(state.name, None) is not None:
                log.warning("%s: Bybit accepted its subscription again; streaming", state.name)
                self._tell(state.name, None)

    def on_refused(self, topic: str, refusal: Refusal) -> None:
        """Bybit refused a topic: mark its symbol, retry it or drop it; others go on. A
        refused ticker only costs the announcements: funding then comes from the history."""
        symbol = self._by_topic[topic]
        if topic in self._tickers:
            log.warning("%s: Bybit refused %s (%s); its funding comes from the history", symbol, topic,
                        refusal.reason)
            return
        now_ms = self._clock.now_ms()
        earlier = self.problems.get(symbol)
        problem = FeedProblem(
            state="dropped" if refusal.dropped else "refused", reason=refusal.reason, refusals=refusal.refusals,
            attempts=refusal.attempts, since_ms=earlier.since_ms if earlier else now_ms,
            retry_at_ms=None if refusal.retry_in_s is None else now_ms + int(refusal.retry_in_s * 1000),
        )
        self.problems[symbol] = problem
        if refusal.dropped:
            log.error("%s: %s; the other symbols go on", symbol, problem.describe())
            self._symbols[symbol].queue.put_nowait(SubscriptionError(
                f"Bybit refused the subscription to {topic} on {self._exchange.ws_url} {refusal.refusals} time(s): "
                f"{refusal.reason}; dropped until restart (check [feed] symbols and interval)"))
        else:
            log.warning("%s: %s", symbol, problem.describe())
        self._tell(symbol, problem)

    @property
    def forbidden(self) -> list[Forbidden]:
        """The HTTP 403s the streams are waiting out now (an IP ban or a blocked region)."""
        return [stream.forbidden for stream in self._streams if stream.forbidden is not None]

    def on_link_changed(self) -> None:
        self.stats.connected = all(stream.up for stream in self._streams if stream.live)
        if self._funding is not None:
            for stream in self._streams:
                if not stream.up:
                    for topic in stream.topics:
                        if topic in self._tickers:
                            self._funding.on_link_lost(self._tickers[topic])

    def on_ticker(self, symbol: str, data: TickerData) -> None:
        if self._funding is not None:
            self._funding.on_ticker(symbol, data)

    def on_candles(self, candles: list[Candle], received_ns: int) -> None:
        for candle in candles:
            state = self._symbols[candle.symbol]
            self._offer(state, FeedCandle(candle, "stream", received_ns))
            if state.sequencer.has_gap:
                state.backfill_wanted.set()

    # -- backfill side ---------------------------------------------------------------

    async def _backfill_forever(self, state: _Symbol) -> None:
        try:
            await self._backfill_loop(state)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: this symbol stops, the others go on
            log.exception("backfill of %s stopped", state.name)
            state.queue.put_nowait(exc)

    async def _backfill_loop(self, state: _Symbol) -> None:
        delays = None
        while True:
            await state.backfill_wanted.wait()
            state.backfill_wanted.clear()
            since_ms = state.sequencer.next_open_ms
            # Nothing to resume from yet (the stream sets the start), or a gap that the
            # previous round already filled: no request.
            if since_ms is None or not (state.reconnected or state.sequencer.has_gap):
                continue
            after_reconnect, state.reconnected = state.reconnected, False
            try:
                backfill = await self._rest.fetch_closed(state.name, self.interval, since_ms)
            except RestError as exc:
                self.stats.backfill_failures += 1
                state.reconnected = state.reconnected or after_reconnect
                delays = delays or self._backoff()
                delay = next(delays)
                log.warning("backfill of %s failed (%s); trying again in %.2fs", state.name, exc, delay)
                await asyncio.sleep(delay)
                state.backfill_wanted.set()
                continue
            self.stats.backfills += 1
            received_ns = time.perf_counter_ns()
            released = sum(len(self._offer(state, FeedCandle(c, "rest", received_ns)).released)
                           for c in backfill.candles)
            if backfill.candles:
                log.info("backfilled %s over REST from %s: %d candle(s) fetched, %d released",
                         state.name, _fmt(since_ms), len(backfill.candles), released)
            skip = state.sequencer.skip_absent(backfill.covered_until_ms)
            for first_ms, last_ms in skip.ranges:
                missing = self.interval.grid.steps(first_ms, last_ms) + 1
                self.stats.skipped_absent += missing
                log.error("%s: the exchange has no candle from %s to %s (%d missing); going on without them",
                          state.name, _fmt(first_ms), _fmt(last_ms), missing)
            self._publish(state, skip.released)
            if state.sequencer.has_gap:  # the REST side has not seen those candles close yet
                delays = delays or self._backoff()
                await asyncio.sleep(next(delays))
                state.backfill_wanted.set()
            else:
                delays = None

    def _backoff(self) -> Generator[float, None, None]:
        return jittered_backoff(self._exchange.backoff_min_s, self._exchange.backoff_max_s, self._rng)

    # -- shared ----------------------------------------------------------------------

    def _offer(self, state: _Symbol, item: FeedCandle) -> Offer:
        offer = state.sequencer.offer(item)
        candle = item.candle
        if offer.out_of_order:
            self.stats.out_of_order += 1
            log.info("%s %s: candle %s arrived out of order", candle.symbol, candle.interval, _fmt(candle.open_time_ms))
        if offer.duplicate:
            # A REST copy of what the stream already gave is the normal overlap of a backfill
            # (summed up in its log line); a repeated stream candle is worth a line of its own.
            self.stats.duplicates += 1
            log.log(logging.INFO if item.source == "stream" else logging.DEBUG,
                    "%s %s: dropped duplicate candle %s from %s",
                    candle.symbol, candle.interval, _fmt(candle.open_time_ms), item.source)
        if offer.opened_gap:
            self.stats.gaps += 1
            log.info("%s %s: gap before %s (expected %s); backfilling over REST",
                     candle.symbol, candle.interval, _fmt(candle.open_time_ms), _fmt(state.sequencer.next_open_ms))
        self._publish(state, offer.released)
        return offer

    def _publish(self, state: _Symbol, released: list[FeedCandle]) -> None:
        for item in released:
            self.stats.released += 1
            self.stats.backfilled_candles += item.source == "rest"
            state.queue.put_nowait(item)

    def _fail_all(self, exc: BaseException) -> None:
        for state in self._symbols.values():
            state.queue.put_nowait(exc)

    def _tell(self, symbol: str, problem: FeedProblem | None) -> None:
        if self._on_problem is not None:
            self._on_problem(symbol, problem)


def _fmt(open_ms: int | None) -> str:
    return "?" if open_ms is None else format_ms(open_ms)

