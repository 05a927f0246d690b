"""Closed candles over Bybit's public REST API, through ccxt.

Used for the warm-up history and to fill every gap the websocket leaves, and for a
perpetual's funding interval and settled funding history. The rules:

- **Public market data only.** No API key is ever configured, and the ccxt exchange is
  :class:`trainer.data.bybit_public.AsyncPublicBybit`, whose ``sign()`` refuses anything but a
  public GET, so not even a bug can reach an order or account endpoint.
- **Only closed candles.** Bybit's newest row is the still-forming candle. Whether a
  candle has closed is decided with the *server's* clock (``/v5/market/time``), fetched
  before the candles: a local clock a few hundred ms fast would let a half-formed
  candle in, and the stream's final copy would then be dropped as a duplicate. It also
  makes a replay server's virtual clock work without sharing anything with it.
- **Retry what is transient.** Rate limits (retCode 10006/10018) and network errors are
  retried with jittered exponential back-off; anything else (an unknown symbol, a bad
  parameter) fails at once with a clear :class:`RestError`.
- **An HTTP 403 is not a rate limit.** Bybit bans an IP that sent too much, or blocks a
  region, and asks for 10 minutes of quiet: no request of any symbol goes out for
  ``[exchange] forbidden_wait_s``, :attr:`BybitRest.forbidden` says why (for /health),
  then the request is tried again.

Requests of all symbols share one pace, ``[exchange] rest_requests_per_s`` (ccxt's own
throttle, 10 per second, is off), and concurrent callers share one read of the server's
clock, so the warm-up and the reconnect backfill of many symbols cost one request each.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from ccxt.base.errors import BaseError as CcxtError
from ccxt.base.errors import NetworkError, RateLimitExceeded
from pydantic import ValidationError

from bot.backoff import jittered_backoff
from bot.bybit.forbidden import Forbidden
from bot.bybit.markets import Interval, UnknownSymbolError, ccxt_symbol
from bot.bybit.schemas import Ohlcv
from bot.bybit.stats import RestStats
from config.errors import UserError
from config.settings import ExchangeSettings
from env.types import Candle
from state.clock import Clock, SystemClock
from trainer.data.bybit_public import (
    FORBIDDEN_ADVICE,
    AccessForbidden,
    AsyncPublicBybit,
    bybit_exchange,
    kline_window,
    short_error,
)
from trainer.data.funding_history import FUNDING_PAGE, FundingPager, Settlement, funding_interval_ms, settlement

log = logging.getLogger(__name__)

PAGE_LIMIT = 1000  # Bybit's maximum rows per /v5/market/kline request
_T = TypeVar("_T")


class RestError(UserError):
    """A REST request that failed for good (after its retries, or at once if not transient)."""


class RestForbidden(RestError):
    """Bybit answered HTTP 403, and the client was told not to wait it out (``shadow doctor``)."""


@dataclass(frozen=True, slots=True)
class Backfill:
    """Closed candles from REST, and how far the exchange was asked.

    Attributes:
        candles: ascending by open time, no duplicates.
        covered_until_ms: every closed candle the exchange has with an open time up to this
            bound was asked for, so a candle missing below it does not exist there.
    """

    candles: list[Candle]
    covered_until_ms: int


class BybitRest:
    """Async Bybit REST client for closed candles of one category (spot or linear).

    Args:
        exchange: the ``[exchange]`` settings (``rest_url``, category, timeouts, back-off).
        rng: randomness of the back-off jitter (seed it for repeatable tests).
        clock: wall time, for when a 403's quiet period ends.
        sleep: how to wait (tests pass one that returns at once).
        wait_out_403: wait ``forbidden_wait_s`` after a 403 and try again (the daemon), or
            raise :class:`RestForbidden` at once (a one-shot check).

    Use as ``async with BybitRest(settings.exchange) as rest:`` so the HTTP session closes.
    """

    def __init__(self, exchange: ExchangeSettings, *, rng: random.Random | None = None, clock: Clock | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, wait_out_403: bool = True) -> None:
        self.category = exchange.category
        self.url = exchange.rest_url
        self.stats = RestStats()
        self._settings = exchange
        self._rng = rng or random.Random()
        self._ccxt_symbols: dict[str, str] = {}
        self._exchange = bybit_exchange(exchange.rest_url, exchange.category, int(exchange.rest_timeout_s * 1000),
                                        exchange_class=AsyncPublicBybit, throttle=False)
        self._pace = RequestPace(exchange.rest_requests_per_s)
        self._clock_read: asyncio.Future[int] | None = None  # the server-time request in flight
        self._clock = clock or SystemClock()
        self._sleep = sleep
        self._wait_out_403 = wait_out_403
        self._quiet_until = 0.0  # event-loop time before which no request goes out (after a 403)
        self.forbidden: Forbidden | None = None  # the 403 being waited out, if any

    async def __aenter__(self) -> BybitRest:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._exchange.close()

    async def resolve(self, symbols: Sequence[str]) -> None:
        """Check every symbol is listed in the category and remember its ccxt symbol.

        Raises:
            UnknownSymbolError: naming every symbol the exchange does not list.
            RestError: the instruments list could not be loaded.
        """
        await self._call("load markets", self._exchange.load_markets)
        unknown = []
        for symbol in symbols:
            try:
                self._ccxt_symbols[symbol] = ccxt_symbol(self._exchange.markets_by_id, symbol, self.category)
            except UnknownSymbolError as exc:
                unknown.append(str(exc))
        if unknown:
            raise UnknownSymbolError("; ".join(unknown))

    async def server_time_ms(self) -> int:
        """The exchange's clock (``/v5/market/time``), in epoch ms.

        Callers that ask while a read is in flight share it: the server read its clock after
        they asked or moments before, so a candle it calls closed has closed for them too.
        """
        if self._clock_read is None:
            self._clock_read = asyncio.ensure_future(self._call("server time", self._exchange.fetch_time))
            self._clock_read.add_done_callback(self._clock_read_done)
        return int(await asyncio.shield(self._clock_read))

    def _clock_read_done(self, read: asyncio.Future[int]) -> None:
        self._clock_read = None
        if not read.cancelled():
            read.exception()  # retrieved here, so a failure nobody waits for is not reported as lost

    async def fetch_closed(self, symbol: str, iv: Interval, since_ms: int, until_ms: int | None = None) -> Backfill:
        """Every closed candle with ``since_ms <= open time <= until_ms`` (``None``: up to now)."""
        newest_ms = await self._newest_closed_open_ms(iv)
        end_ms = newest_ms if until_ms is None else min(until_ms, newest_ms)
        return await self._fetch_range(symbol, iv, since_ms, end_ms)

    async def fetch_recent(self, symbol: str, iv: Interval, count: int) -> list[Candle]:
        """The newest ``count`` closed candles (fewer if the exchange has fewer): the warm-up."""
        newest_ms = await self._newest_closed_open_ms(iv)
        return (await self._fetch_range(symbol, iv, iv.grid.shift(newest_ms, 1 - count), newest_ms)).candles

    async def funding_interval_ms(self, symbol: str) -> int:
        """The perpetual's funding interval from the instruments list (``fundingInterval``).

        Raises:
            FundingDataError: the exchange lists none (not a perpetual).
        """
        return funding_interval_ms(await self._market_info(symbol), symbol)

    async def launch_time_ms(self, symbol: str) -> int | None:
        """When the instrument was listed (``launchTime`` of the instruments list), if it says."""
        launched = (await self._market_info(symbol)).get("launchTime")
        return int(launched) if isinstance(launched, str) and launched.isdigit() else None

    async def latest_funding(self, symbol: str) -> list[Settlement]:
        """The exchange's newest :data:`FUNDING_PAGE` funding settlements, oldest first (one request:
        Bybit answers a funding history request without times with the latest ones).

        Raises:
            RestError: the request failed after its retries.
            FundingDataError: a rate beyond the sane bound.
        """
        await self._market_info(symbol)
        rows = await self._call(f"latest funding {symbol}", functools.partial(
            self._exchange.fetch_funding_rate_history, self._ccxt_symbols[symbol], limit=FUNDING_PAGE))
        return sorted(settlement(row, symbol) for row in rows)

    async def fetch_funding(self, symbol: str, since_ms: int, until_ms: int) -> list[Settlement]:
        """Every funding settlement with ``since_ms <= time <= until_ms`` from the exchange's
        funding history, oldest first, paged as the trainer pages it
        (:class:`trainer.data.funding_history.FundingPager`).

        Raises:
            RestError: the request failed after its retries.
            FundingDataError: a rate beyond the sane bound.
        """
        pager = FundingPager(since_ms, until_ms, await self.funding_interval_ms(symbol))
        while (window := pager.window()) is not None:
            start, end = window
            rows = await self._call(f"funding history {symbol} from {start}", functools.partial(
                self._exchange.fetch_funding_rate_history, self._ccxt_symbols[symbol], since=start, limit=FUNDING_PAGE,
                params={"until": end}))
            pager.take(settlement(row, symbol) for row in rows)
        return pager.settlements

    async def _market_info(self, symbol: str) -> dict[str, Any]:
        """ccxt's market ``info`` of ``symbol`` (Bybit's instruments-info entry)."""
        if symbol not in self._ccxt_symbols:
            await self.resolve([symbol])
        info: dict[str, Any] = self._exchange.market(self._ccxt_symbols[symbol])["info"]
        return info

    async def _newest_closed_open_ms(self, iv: Interval) -> int:
        """Open time of the newest candle closed on the server's clock (its close <= now)."""
        return iv.grid.newest_closed_open_ms(await self.server_time_ms())

    async def _fetch_range(self, symbol: str, iv: Interval, since_ms: int, end_ms: int) -> Backfill:
        """Page forward ``PAGE_LIMIT`` candles at a time, each page an explicit ``[start, end]``
        window: Bybit answers a wider window with its *newest* rows."""
        if symbol not in self._ccxt_symbols:
            await self.resolve([symbol])
        candles: list[Candle] = []
        cursor = since_ms
        while cursor <= end_ms:
            window_end = min(end_ms, iv.grid.shift(cursor, PAGE_LIMIT - 1))
            rows = await self._page(symbol, iv, cursor, window_end)
            for row in rows:
                candle = _row_to_candle(symbol, iv, row)
                if candle is None or not cursor <= candle.open_time_ms <= window_end:
                    continue
                if not candles or candle.open_time_ms > candles[-1].open_time_ms:
                    candles.append(candle)
            cursor = iv.grid.shift(window_end, 1)
        return Backfill(candles, covered_until_ms=end_ms)

    async def _page(self, symbol: str, iv: Interval, start_ms: int, end_ms: int) -> list[list[Any]]:
        limit = iv.grid.steps(start_ms, end_ms) + 1
        return await self._call(
            f"klines {symbol} {iv.name} from {start_ms}",
            lambda: self._exchange.fetch_ohlcv(self._ccxt_symbols[symbol], iv.name, limit=limit,
                                               params=kline_window(start_ms, end_ms)),
        )

    async def _call(self, what: str, request: Callable[[], Awaitable[_T]]) -> _T:
        """One request with retries on rate-limit and network errors."""
        delays = jittered_backoff(self._settings.backoff_min_s, self._settings.backoff_max_s, self._rng)
        attempts = self._settings.rest_attempts
        attempt = 0
        while True:
            attempt += 1
            await self._pace.wait()
            await self._keep_quiet()
            self.stats.requests += 1
            try:
                answer = await request()
            except AccessForbidden as exc:  # before NetworkError: ccxt calls a 403 a rate limit
                self.stats.forbidden += 1
                if not self._wait_out_403:
                    raise RestForbidden(f"Bybit REST {self.url}: {what}: HTTP 403 Forbidden ({exc.reason}): "
                                        f"{FORBIDDEN_ADVICE}") from None
                self._start_quiet(exc)
                attempt -= 1  # the wait is the remedy Bybit asks for, not a failed attempt
                continue
            except NetworkError as exc:  # RateLimitExceeded is a NetworkError too
                limited = isinstance(exc, RateLimitExceeded)
                self.stats.rate_limited += limited
                reason = "rate-limited" if limited else "network error"
                if attempt >= attempts:
                    raise RestError(
                        f"Bybit REST {self.url}: {what}: {reason} after {attempts} attempt(s): {short_error(exc)}"
                    ) from None
                delay = next(delays)
                self.stats.retries += 1
                log.warning("REST %s: %s (%s); retry %d/%d in %.2fs",
                            what, reason, short_error(exc), attempt, attempts - 1, delay)
                await asyncio.sleep(delay)
                continue
            except CcxtError as exc:
                raise RestError(f"Bybit REST {self.url}: {what}: {short_error(exc)}") from None
            if self.forbidden is not None:
                log.warning("Bybit REST %s answers again after the HTTP 403; requests resume", self.url)
                self.forbidden, self._quiet_until = None, 0.0
            return answer

    def _start_quiet(self, refusal: AccessForbidden) -> None:
        """A 403: no request of any symbol for ``forbidden_wait_s``, and say why."""
        wait_s = self._settings.forbidden_wait_s
        self._quiet_until = asyncio.get_running_loop().time() + wait_s
        self.forbidden = Forbidden("REST", refusal.url, refusal.reason, self._clock.now_ms() + int(wait_s * 1000))
        log.error("%s", self.forbidden.describe())

    async def _keep_quiet(self) -> None:
        """Wait out a 403's quiet period before a request goes out."""
        left = self._quiet_until - asyncio.get_running_loop().time()
        if left > 0:
            await self._sleep(left)


class RequestPace:
    """Starts requests no faster than ``per_s`` per second, in the order they ask (no
    bursts: Bybit counts requests per IP in windows of 5 s)."""

    def __init__(self, per_s: float) -> None:
        self._gap_s = 1.0 / per_s
        self._next_at = 0.0

    async def wait(self) -> None:
        """Return when this request may start."""
        now = asyncio.get_running_loop().time()
        start = max(now, self._next_at)
        self._next_at = start + self._gap_s
        if start > now:
            await asyncio.sleep(start - now)


def _row_to_candle(symbol: str, iv: Interval, row: Sequence[Any]) -> Candle | None:
    """A ccxt OHLCV row as a candle, or ``None`` (logged) when it is not a valid candle."""
    try:
        values = Ohlcv(open=row[1], high=row[2], low=row[3], close=row[4], volume=row[5])
    except (ValidationError, IndexError, TypeError) as exc:
        log.warning("REST %s %s: skipped invalid row %r (%s)", symbol, iv.name, list(row), short_error(exc))
        return None
    return Candle(symbol, iv.name, int(row[0]), values.open, values.high, values.low, values.close, values.volume)

