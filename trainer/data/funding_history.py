"""Perpetual funding history through ccxt, cached beside the candle cache.

A linear perpetual's candles trade with the funding its exchange settled
(:mod:`env.funding`). This module fetches those settlements with ccxt's public
``fetch_funding_rate_history`` (Bybit ``GET /v5/market/funding/history``, at most 200 rows
a request, newest first inside the asked window), keeps them in
``{exchange}_linear_{ID}_funding.csv`` beside the candle cache, asks the exchange only for
what the cache lacks, and writes back what arrived even when a fetch is interrupted, as
:mod:`trainer.data.history` does for candles.

The funding interval comes from the instrument (ccxt's market ``info.fundingInterval``,
Bybit's instruments-info ``fundingInterval`` in minutes), never from a constant: it sets
the paging window, and an exchange that settles more often than it says is still paged
correctly, because a full page is asked again in halves.

:class:`FundingPager` is the paging rule alone, without I/O, so the daemon's async REST
client (:mod:`bot.bybit.rest`) pages the same way.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from env.candles import format_ms, infer_interval_ms
from env.funding import FUNDING_RATE_COLUMN, MAX_FUNDING_RATE, funding_rate_column
from trainer.data.history import HistoryError, Market, RetryPolicy, call_with_retry, make_cache_dir, write_cache

log = logging.getLogger(__name__)

FUNDING_PAGE = 200
"""Bybit's maximum ``limit`` for ``/v5/market/funding/history``."""
FUNDING_CACHE_COLUMNS: tuple[str, ...] = ("time_ms", "rate")

Settlement = tuple[int, float]
"""A funding time (epoch ms) and the rate settled at it."""
DEFAULT_RETRY = RetryPolicy()


class FundingSource(Protocol):
    """The part of a ccxt exchange the funding fetch uses (a fake in tests)."""

    def load_markets(self, reload: bool = False, params: dict[str, Any] = ...) -> Any: ...

    def market(self, symbol: str) -> Mapping[str, Any]: ...

    def fetch_funding_rate_history(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None,
        params: dict[str, Any] = ...,
    ) -> list[dict[str, Any]]: ...


class FundingDataError(HistoryError):
    """Funding the exchange cannot give, or gives in a form Shadow refuses (a rate beyond
    :data:`env.funding.MAX_FUNDING_RATE`, a missing funding interval)."""


def funding_interval_ms(market_info: Mapping[str, Any], symbol: str) -> int:
    """The instrument's funding interval in ms, from ccxt's market ``info`` (Bybit's
    instruments-info ``fundingInterval``, in minutes).

    Raises:
        FundingDataError: the exchange lists no positive funding interval for the symbol.
    """
    minutes = market_info.get("fundingInterval")
    try:
        value = int(minutes)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise FundingDataError(f"{symbol}: the exchange lists no funding interval for it (fundingInterval "
                               f"{minutes!r}); is it a perpetual?")
    return value * 60_000


def settlement(row: Mapping[str, Any], symbol: str) -> Settlement:
    """One ccxt funding-history row (``timestamp``, ``fundingRate``) as a checked settlement.

    Raises:
        FundingDataError: no time, or a rate that is not a finite number within the bound.
    """
    time_ms, rate = row.get("timestamp"), row.get("fundingRate")
    if not isinstance(time_ms, int) or not isinstance(rate, (int, float)) or not math.isfinite(rate):
        raise FundingDataError(f"{symbol}: the exchange sent a funding row without a time or a numeric rate: "
                               f"timestamp {time_ms!r}, fundingRate {rate!r}")
    if abs(rate) > MAX_FUNDING_RATE:
        raise FundingDataError(f"{symbol}: funding rate {rate!r} at {format_ms(time_ms)} is beyond the sane bound of "
                               f"+-{MAX_FUNDING_RATE}; refusing the funding history")
    return time_ms, float(rate)


@dataclass
class FundingPager:
    """Forward paging of funding history over ``[since_ms, until_ms]`` (inclusive).

    Each window spans :data:`FUNDING_PAGE` funding intervals. The exchange answers a
    window with at most that many rows, its newest: a full answer may have lost older
    rows (the interval was shorter than the instrument says), so the window is asked
    again at half the span; otherwise the rows are kept and the next window starts after it.

    Use: ``while (window := pager.window()) is not None: pager.take(fetch(*window))``, then
    read :attr:`settlements`.
    """

    since_ms: int
    until_ms: int
    interval_ms: int
    settlements: list[Settlement] = field(default_factory=list)
    _span_ms: int = 0

    def __post_init__(self) -> None:
        self._span_ms = FUNDING_PAGE * self.interval_ms

    def window(self) -> tuple[int, int] | None:
        """The next ``(start_ms, end_ms)`` to ask for, or ``None`` when done."""
        if self.since_ms > self.until_ms:
            return None
        return self.since_ms, min(self.until_ms, self.since_ms + self._span_ms - 1)

    def take(self, rows: Iterable[Settlement]) -> None:
        """The settlements the exchange answered for the current window."""
        start, end = self.window() or (0, -1)
        inside = [row for row in rows if start <= row[0] <= end]
        if len(inside) >= FUNDING_PAGE and self._span_ms > 1:
            self._span_ms //= 2
            return
        self.settlements.extend(sorted(inside))
        self.since_ms = end + 1


def funding_cache_file(market: Market, cache_dir: Path) -> Path:
    """``{exchange}_linear_{ID}_funding.csv`` beside the candle cache files."""
    return Path(cache_dir) / f"{market.exchange}_{market.category}_{market.market_id}_funding.csv"


def read_funding_cache(path: Path) -> list[Settlement]:
    """The cached settlements, oldest first (none when there is no cache yet)."""
    if not path.exists():
        return []
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise FundingDataError(f"{path}: unreadable funding cache ({exc}); move it away to fetch afresh") from None
    if list(frame.columns) != list(FUNDING_CACHE_COLUMNS) or not pd.api.types.is_integer_dtype(frame["time_ms"]):
        raise FundingDataError(f"{path}: not a funding cache (columns {list(frame.columns)}); move it away to "
                               "fetch afresh")
    return list(zip(frame["time_ms"].astype(int).tolist(), frame["rate"].astype(float).tolist(), strict=True))


def write_funding_cache(path: Path, settlements: Iterable[Settlement]) -> None:
    """Write atomically (:func:`trainer.data.history.write_cache`), one row per funding time, oldest first."""
    merged = dict(sorted(settlements))
    write_cache(path, pd.DataFrame({"time_ms": np.array(list(merged), dtype=np.int64), "rate": list(merged.values())}),
                "funding")


def load_funding_history(
    market: Market,
    since_ms: int,
    until_ms: int,
    *,
    exchange: FundingSource,
    cache_dir: Path,
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Settlement]:
    """The settlements of ``market`` with ``since_ms <= time <= until_ms``, from the cache
    plus the exchange (only the ranges the cache lacks are asked for).

    Raises:
        FundingDataError: no funding interval, a refused rate, or no funding at all over a
            span longer than the funding interval (the exchange cannot give it).
        HistoryError: the exchange failed after its retries.
    """
    path = funding_cache_file(market, cache_dir)
    cached = read_funding_cache(path)
    make_cache_dir(path)
    call_with_retry(exchange.load_markets, what=f"load markets for {market.symbol}", policy=retry, sleep=sleep)
    interval_ms = funding_interval_ms(exchange.market(market.symbol)["info"], market.symbol)
    fetched: list[Settlement] = []
    try:
        for start, end in _missing(cached, since_ms, until_ms, interval_ms):
            pager = FundingPager(start, end, interval_ms)
            while (window := pager.window()) is not None:
                rows = call_with_retry(
                    functools.partial(exchange.fetch_funding_rate_history, market.symbol, since=window[0],
                                      limit=FUNDING_PAGE, params={"until": window[1]}),
                    what=f"fetch_funding_rate_history {market.symbol} since {format_ms(window[0])}",
                    policy=retry, sleep=sleep,
                )
                pager.take(settlement(row, market.symbol) for row in rows)
            fetched += pager.settlements
    finally:
        if fetched:  # keep what arrived, even if interrupted
            write_funding_cache(path, [*cached, *fetched])
            log.info("%s: cached %d new funding settlement(s)", path, len(fetched))
    found = sorted({t: r for t, r in [*cached, *fetched] if since_ms <= t <= until_ms}.items())
    if not found and until_ms - since_ms >= interval_ms:
        raise FundingDataError(
            f"{market.symbol}: the exchange has no funding history from {format_ms(since_ms)} to "
            f"{format_ms(until_ms)} (funding every {interval_ms // 60_000} min); a perpetual's candles cannot be "
            "traded without it")
    return found


def with_funding(
    candles: pd.DataFrame, market: Market, *, exchange: FundingSource, cache_dir: Path,
    retry: RetryPolicy = DEFAULT_RETRY, sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """``candles`` of a linear perpetual with their ``funding_rate`` column (every
    settlement charged inside them, :func:`env.funding.funding_rate_column`); spot candles
    are returned as they are."""
    if market.category != "linear" or candles.empty:
        return candles
    times = candles["open_time_ms"].to_numpy()
    interval_ms = infer_interval_ms(times)
    settlements = load_funding_history(market, int(times[0]) - interval_ms + 1, int(times[-1]), exchange=exchange,
                                       cache_dir=cache_dir, retry=retry, sleep=sleep)
    out = candles.copy()
    out[FUNDING_RATE_COLUMN] = funding_rate_column(times, interval_ms, settlements)
    return out


def _missing(cached: list[Settlement], since_ms: int, until_ms: int, interval_ms: int) -> list[tuple[int, int]]:
    """Ranges to ask for: before the first cached settlement (unless less than one funding
    interval, where none can be) and after the last."""
    if not cached:
        return [(since_ms, until_ms)]
    first, last = cached[0][0], cached[-1][0]
    ranges = []
    if first - since_ms >= interval_ms:
        ranges.append((since_ms, first - 1))
    if last < until_ms:
        ranges.append((last + 1, until_ms))
    return ranges
