"""A perpetual's funding, live: what each candle settles, resolved before the engine marks it.

The money model is :mod:`env.funding`; this module finds, for a closed candle
``(open, close]``, every funding settlement inside it and its rate:

- **Which times.** The instrument's funding grid (multiples of its ``fundingInterval``
  since the epoch: 00:00, 08:00 and 16:00 UTC for 8 h, as Bybit settles), the next funding
  time the ticker stream announced (``nextFundingTime``, which follows an interval change
  the grid cannot know of), and any settlement already known inside the candle.
- **Which rate**, first that applies:

  1. a settlement already known: stored in the ledger by an earlier decision (a restart
     finds the very rate it applied before) or fetched from the history;
  2. the rate the ticker stream announced for that time (``fundingRate`` while
     ``nextFundingTime`` named it), when the subscription that brought the announcement is
     still the current one and its connection up: no later announcement can have been missed;
  3. otherwise the time was missed (a reconnect, a silent stream): the exchange's funding
     history is fetched over REST first (:meth:`bot.bybit.rest.BybitRest.fetch_funding`),
     a network failure retried with the kline feed's jittered back-off until it answers,
     and a settlement the exchange has not published yet asked again a few times. A
     grid time the history never settled is no funding time (the interval changed);
     a time the stream announced but the history lacks keeps the announced rate.

Each resolved settlement says where its rate came from (``ticker`` or ``history``), which
the ledger keeps beside the candles (``funding_rates``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from bot.backoff import jittered_backoff
from bot.bybit.rest import BybitRest, RestError
from bot.bybit.schemas import TickerData
from config.settings import ExchangeSettings
from env.candles import format_ms
from env.funding import MAX_FUNDING_RATE
from trainer.data.funding_history import Settlement

log = logging.getLogger(__name__)

TICKER = "ticker"
HISTORY = "history"


class ResolvedFunding(NamedTuple):
    """One settlement inside a candle: its time, its rate and where the rate came from."""

    time_ms: int
    rate: float
    source: str  # TICKER or HISTORY


class _Announcement(NamedTuple):
    rate: float
    subscription: int  # the ticker subscription it arrived on (_SymbolFunding.subscription)


@dataclass(slots=True)
class _SymbolFunding:
    interval_ms: int
    settled: dict[int, ResolvedFunding] = field(default_factory=dict)
    announced: dict[int, _Announcement] = field(default_factory=dict)
    next_time_ms: int | None = None
    rate: float | None = None
    subscription: int = 0  # counts the ticker topic's (re)subscriptions
    live: bool = False  # subscribed, and its connection up

    def times_in(self, open_ms: int, close_ms: int) -> list[int]:
        """Candidate funding times in ``(open_ms, close_ms]``, ascending."""
        step = self.interval_ms
        grid = range((open_ms // step + 1) * step, close_ms + 1, step)
        known = [t for t in (*self.settled, *self.announced) if open_ms < t <= close_ms]
        return sorted({*grid, *known})


class FundingFeed:
    """Funding of every configured perpetual symbol (see the module docstring).

    Args:
        rest: the open REST client (funding interval, funding history).
        exchange: ``[exchange]`` settings: the back-off and the REST attempts.
        rng: randomness of the back-off jitter.

    Call :meth:`start` per symbol before the stream runs; the candle feed
    (:class:`bot.bybit.feed.CandleFeed`) subscribes the tickers and calls
    :meth:`on_subscribed`, :meth:`on_link_lost` and :meth:`on_ticker`; the daemon awaits
    :meth:`due` for every candle before the engine marks it.
    """

    def __init__(self, rest: BybitRest, exchange: ExchangeSettings, rng: random.Random | None = None) -> None:
        self._rest = rest
        self._exchange = exchange
        self._rng = rng or random.Random()
        self._symbols: dict[str, _SymbolFunding] = {}

    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def on_subscribed(self, symbol: str) -> None:
        """``symbol``'s ticker topic was (re)subscribed: what came before may have missed updates."""
        state = self._symbols.get(symbol)
        if state is not None:
            state.subscription += 1
            state.live = True

    def on_link_lost(self, symbol: str) -> None:
        """The connection carrying ``symbol``'s ticker went down."""
        state = self._symbols.get(symbol)
        if state is not None:
            state.live = False

    async def start(self, symbol: str, known: Iterable[Settlement]) -> None:
        """Read the instrument's funding interval and take the settlements known so far
        (those the ledger stored, those just fetched)."""
        state = _SymbolFunding(await self._rest.funding_interval_ms(symbol))
        state.settled = {t: ResolvedFunding(t, r, HISTORY) for t, r in known}
        self._symbols[symbol] = state

    def interval_ms(self, symbol: str) -> int:
        return self._symbols[symbol].interval_ms

    def announced(self, symbol: str) -> tuple[int, float] | None:
        """The next funding time and the rate the stream announces for it (for status and metrics)."""
        state = self._symbols.get(symbol)
        if state is None or state.next_time_ms is None or state.rate is None:
            return None
        return state.next_time_ms, state.rate

    def on_ticker(self, symbol: str, data: TickerData) -> None:
        """A ticker push: a delta carries only what changed, so the rate stays with the next
        funding time until either moves."""
        state = self._symbols.get(symbol)
        if state is None or (data.fundingRate is None and data.nextFundingTime is None):
            return
        if data.fundingRate is not None and not abs(data.fundingRate) <= MAX_FUNDING_RATE:
            log.warning("%s: ignored an announced funding rate of %r, beyond the sane bound of +-%g",
                        symbol, data.fundingRate, MAX_FUNDING_RATE)
            return
        if data.nextFundingTime is not None:
            state.next_time_ms = data.nextFundingTime
        if data.fundingRate is not None:
            state.rate = data.fundingRate
        if state.next_time_ms is not None and state.rate is not None:
            state.announced[state.next_time_ms] = _Announcement(state.rate, state.subscription)

    async def due(self, symbol: str, open_ms: int, close_ms: int) -> list[ResolvedFunding]:
        """Every settlement inside the candle ``(open_ms, close_ms]``, oldest first (none for a
        symbol without funding)."""
        state = self._symbols.get(symbol)
        if state is None:
            return []
        times = state.times_in(open_ms, close_ms)
        missed = [t for t in times if t not in state.settled and self._announced(state, t) is None]
        if missed:
            await self._backfill(symbol, state, missed, open_ms, close_ms)
        resolved = [found for t in times if (found := self._resolve(symbol, state, t, missed)) is not None]
        for book in (state.settled, state.announced):  # done with everything up to this close
            for time_ms in [t for t in book if t <= close_ms]:
                del book[time_ms]
        return resolved

    def _resolve(self, symbol: str, state: _SymbolFunding, time_ms: int, missed: list[int]) -> ResolvedFunding | None:
        """The settlement at ``time_ms`` once the history was asked for what was ``missed``."""
        found = state.settled.get(time_ms) or self._announced(state, time_ms)
        if found is not None:
            if time_ms in missed:
                log.info("%s: funding at %s backfilled from the exchange's history", symbol, format_ms(time_ms))
            return found
        announcement = state.announced.get(time_ms)
        if announcement is not None:
            log.warning("%s: the exchange's history has no funding at %s; applying the rate %r announced on the "
                        "stream", symbol, format_ms(time_ms), announcement.rate)
            return ResolvedFunding(time_ms, announcement.rate, TICKER)
        log.info("%s: no funding settled at %s (funding every %d min by the instrument); none charged", symbol,
                 format_ms(time_ms), state.interval_ms // 60_000)
        return None

    @staticmethod
    def _announced(state: _SymbolFunding, time_ms: int) -> ResolvedFunding | None:
        announcement = state.announced.get(time_ms)
        if announcement is None or not state.live or announcement.subscription != state.subscription:
            return None
        return ResolvedFunding(time_ms, announcement.rate, TICKER)

    async def _backfill(self, symbol: str, state: _SymbolFunding, missed: list[int], open_ms: int,
                        close_ms: int) -> None:
        """Ask the exchange's history for the candle's settlements until every ``missed`` time
        is in it: network failures forever (as the kline backfill), a settlement not published
        yet up to ``rest_attempts`` times (see the module docstring)."""
        failures, unpublished = self._delays(), self._delays()
        asked = 0
        while True:
            try:
                settled = await self._rest.fetch_funding(symbol, open_ms + 1, close_ms)
            except RestError as exc:
                delay = next(failures)
                log.warning("%s: funding history for %s failed (%s); trying again in %.2fs", symbol,
                            format_ms(missed[0]), exc, delay)
                await asyncio.sleep(delay)
                continue
            state.settled.update({t: ResolvedFunding(t, r, HISTORY) for t, r in settled})
            asked += 1
            if all(t in state.settled for t in missed) or asked >= self._exchange.rest_attempts:
                return
            await asyncio.sleep(next(unpublished))

    def _delays(self) -> Iterator[float]:
        return jittered_backoff(self._exchange.backoff_min_s, self._exchange.backoff_max_s, self._rng)

