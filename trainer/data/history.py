"""Historical Bybit candles through ccxt, kept in a local cache.

``load_history`` returns the latest ``num_candles`` *closed* candles of one market.
It reads the cache file of that market first and asks the exchange only for what the
cache lacks: the older head (when more candles are wanted than cached) and the newer
tail (everything after the last cached candle). Pages are fetched forward in windows of
1,000 candles (``start``/``end`` on Bybit's ``/v5/market/kline``), retried with
exponential back-off on ``RateLimitExceeded``/``NetworkError``, merged with the cache,
de-duplicated by open time (the newest fetch wins) and written back atomically, even
when the fetch is interrupted, so a candle fetched once is never fetched again.

The still-forming candle (``open_time + interval > now``) is never stored or returned;
"now" is the exchange's clock (Bybit's ``/v5/market/time``), not the local one, so a fast
local clock cannot let a half-formed candle into the cache, and a replay server's virtual
clock (``shadow replay-server``) is respected.
Gaps inside the cache (an exchange outage) are not re-fetched; they are filled with flat
candles, with a warning, by :func:`env.candles.normalize_candles`.

Markets are ccxt unified symbols: ``BTC/USDT`` is Bybit spot, ``BTC/USDT:USDT`` the
linear (USDT-margined) perpetual. No API key is used or needed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import ccxt
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from config.errors import UserError
from env.candles import OHLCV_COLUMNS, RepairPolicy, format_ms, normalize_candles
from env.intervals import CandleGrid, grid
from strategies.model_metadata import market_id
from trainer.data.bybit_public import FORBIDDEN_ADVICE, AccessForbidden, kline_window, short_error

log = logging.getLogger(__name__)

PAGE_CANDLES = 1000
"""Bybit's maximum ``limit`` for ``/v5/market/kline``."""
CACHE_COLUMNS: tuple[str, ...] = ("timestamp", *OHLCV_COLUMNS)
"""Cache layout: the bundled sample layout (``timestamp`` = open time in epoch ms)."""
SERVER_TIME_ATTEMPTS = 2
"""Tries to read the exchange's clock before falling back to the local one."""
LOCAL_CLOCK_MARGIN_MS = 60_000
"""When the exchange's clock cannot be read, a candle counts as closed only this long after
its close by the local clock, so a local clock up to a minute fast cannot let a forming
candle into the cache (where it would stay: later runs fetch only after the last cached)."""

T = TypeVar("T")


class HistoryError(UserError):
    """Candles that cannot be fetched: unknown symbol, exchange down after all retries,
    an unreadable cache file."""


class ForbiddenError(HistoryError):
    """Bybit answered HTTP 403 (an IP ban or a blocked region): stop, do not fall back or retry."""


class OhlcvSource(Protocol):
    """The part of a ccxt exchange the fetcher uses (a fake in tests)."""

    def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None,
        params: dict[str, Any] = ...,  # ccxt's signature
    ) -> list[list[float]]: ...

    def fetch_time(self, params: dict[str, Any] = ...) -> int | None: ...  # ccxt's signature

    def milliseconds(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Market:
    """One candle series: ``(exchange, category, symbol, timeframe)`` names its cache file.

    Args:
        symbol: ccxt unified symbol (``BTC/USDT`` spot, ``BTC/USDT:USDT`` linear perpetual).
        timeframe: ccxt timeframe (``1m``, ``5m``, ``1h`` ...).
    """

    symbol: str
    timeframe: str
    exchange: str = "bybit"

    @property
    def category(self) -> str:
        """Bybit's market category: a settle currency after ``:`` means a perpetual."""
        return "linear" if ":" in self.symbol else "spot"

    @property
    def market_id(self) -> str:
        """Bybit's symbol id: ``BTC/USDT:USDT`` -> ``BTCUSDT``."""
        return market_id(self.symbol)

    @property
    def grid(self) -> CandleGrid:
        """Where its candles open (Bybit's weeks on Mondays, calendar months)."""
        return grid(self.timeframe)

    def cache_file(self, cache_dir: Path) -> Path:
        return Path(cache_dir) / f"{self.exchange}_{self.category}_{self.market_id}_{self.timeframe}.csv"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off: the k-th retry waits ``min(max_delay_s, base x 2**k)``, where
    ``base`` is ``rate_limit_delay_s`` after a rate-limit error, else ``base_delay_s``."""

    attempts: int = 6
    base_delay_s: float = 1.0
    rate_limit_delay_s: float = 5.0
    max_delay_s: float = 60.0


def call_with_retry(
    fn: Callable[[], T], *, what: str, policy: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep
) -> T:
    """Run ``fn``; retry transient ccxt errors with back-off; turn the rest into :class:`HistoryError`
    (an HTTP 403 at once: Bybit bans the IP or blocks the region and asks for quiet)."""
    for attempt in range(policy.attempts):
        try:
            return fn()
        except AccessForbidden as exc:  # not retried: Bybit asks for at least 10 minutes of quiet
            raise ForbiddenError(f"{what}: Bybit answered HTTP 403 Forbidden ({exc.reason}): {FORBIDDEN_ADVICE}; "
                                 "fetch again later") from None
        except ccxt.RateLimitExceeded as exc:  # a NetworkError subclass: must come first
            base, error = policy.rate_limit_delay_s, exc
        except ccxt.NetworkError as exc:
            base, error = policy.base_delay_s, exc
        except ccxt.BadSymbol as exc:
            raise HistoryError(f"{what}: the exchange does not list this symbol ({short_error(exc)})") from None
        except ccxt.ExchangeError as exc:
            raise HistoryError(
                f"{what}: the exchange refused the request ({type(exc).__name__}: {short_error(exc)})"
            ) from None
        if attempt == policy.attempts - 1:
            raise HistoryError(
                f"{what}: gave up after {policy.attempts} attempts ({type(error).__name__}: {short_error(error)})"
            )
        delay = min(policy.max_delay_s, base * 2**attempt)
        log.warning("%s: %s (%s); retry %d/%d in %.1f s",
                    what, type(error).__name__, short_error(error), attempt + 1, policy.attempts - 1, delay)
        sleep(delay)
    raise HistoryError(f"{what}: no attempt allowed (RetryPolicy.attempts = {policy.attempts})")


def exchange_now_ms(
    exchange: OhlcvSource, *, retry: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep
) -> int:
    """"Now" for deciding which candles have closed: the exchange's clock.

    Read with ccxt's ``fetch_time`` (Bybit ``GET /v5/market/time``), as the daemon's REST
    client does. If it cannot be read in :data:`SERVER_TIME_ATTEMPTS` tries (a
    Bybit-compatible server without that endpoint, a garbled answer), this logs a warning
    and returns the local clock minus :data:`LOCAL_CLOCK_MARGIN_MS` instead.
    """
    policy = replace(retry, attempts=max(1, min(retry.attempts, SERVER_TIME_ATTEMPTS)))
    try:
        now_ms = call_with_retry(exchange.fetch_time, what="server time", policy=policy, sleep=sleep)
        if not isinstance(now_ms, int) or now_ms <= 0:
            raise HistoryError(f"server time: the exchange answered {now_ms!r}, not epoch milliseconds")
        return now_ms
    except ForbiddenError:
        raise  # the local clock would not help: Bybit asks for quiet
    except HistoryError as exc:
        log.warning("%s; cannot read the exchange's clock, so a candle counts as closed %d s after its close "
                    "by the local clock instead", exc, LOCAL_CLOCK_MARGIN_MS // 1000)
        return int(exchange.milliseconds()) - LOCAL_CLOCK_MARGIN_MS


def read_cache(path: Path) -> pd.DataFrame:
    """The cached candles of one market (empty frame when there is no cache yet)."""
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "timestamp" else "float64") for c in CACHE_COLUMNS})
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise HistoryError(f"{path}: unreadable candle cache ({exc}); move it away to fetch afresh") from None
    if list(frame.columns) != list(CACHE_COLUMNS) or not pd.api.types.is_integer_dtype(frame["timestamp"]):
        raise HistoryError(f"{path}: not a candle cache (columns {list(frame.columns)}); move it away to fetch afresh")
    return frame


def make_cache_dir(path: Path) -> None:
    """Create the cache file's directory, before anything is fetched into it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HistoryError(f"{path.parent}: cannot create the candle cache directory ({exc}); "
                           "check [train] cache_dir") from None


def write_cache(path: Path, frame: pd.DataFrame, kind: str = "candle") -> None:
    """Write atomically (temp file + rename): an interrupted write never truncates the cache.
    ``kind`` names the cache in the error (``candle``, ``funding``)."""
    make_cache_dir(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except OSError as exc:
        raise HistoryError(f"{path}: cannot write the {kind} cache ({exc}); the file is unchanged") from None


def merge_candles(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Union by open time, sorted; for a timestamp in both, the newer fetch wins."""
    merged = pd.concat([old, new], ignore_index=True)
    merged = merged.drop_duplicates("timestamp", keep="last").sort_values("timestamp", kind="stable")
    return merged.reset_index(drop=True)


def load_history(
    market: Market,
    num_candles: int,
    *,
    exchange: OhlcvSource,
    cache_dir: Path,
    progress: bool = True,
    retry: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """The latest ``num_candles`` closed candles of ``market``, from cache plus exchange.

    Returns:
        A validated frame (:func:`env.candles.normalize_candles`, gaps repaired with a
        warning); fewer rows than asked when the exchange has less history.
    """
    path = market.cache_file(cache_dir)
    cached = read_cache(path)
    make_cache_dir(path)
    candles = market.grid
    last_open = candles.newest_closed_open_ms(exchange_now_ms(exchange, retry=retry, sleep=sleep))
    want_from = candles.shift(last_open, -num_candles)
    pages = [(int(since), min(candles.shift(int(since), PAGE_CANDLES - 1), end))
             for start, end in _missing_ranges(cached, want_from, last_open, candles)
             for since in candles.range_ms(start, end)[::PAGE_CANDLES]]
    fetched: list[list[float]] = []
    try:
        with tqdm(total=sum(candles.steps(since, end) + 1 for since, end in pages), unit="candle",
                  desc=f"fetch {market.symbol} {market.timeframe}", disable=not progress) as bar:
            for since, until in pages:
                rows = call_with_retry(
                    partial(exchange.fetch_ohlcv, market.symbol, market.timeframe, limit=PAGE_CANDLES,
                            params=kline_window(since, until)),
                    what=f"fetch_ohlcv {market.symbol} {market.timeframe} since {format_ms(since)}",
                    policy=retry, sleep=sleep,
                )
                fetched.extend(row for row in rows if since <= row[0] <= until)
                bar.update(candles.steps(since, until) + 1)
    finally:
        if fetched:  # keep what arrived, even if interrupted
            cached = merge_candles(cached, _rows_to_frame(fetched))
            write_cache(path, cached)
            log.info("%s: cached %d new candle(s), %d in total", path, len(fetched), len(cached))
    return _latest_closed(cached, last_open, num_candles, market, path)


def _missing_ranges(cached: pd.DataFrame, want_from: int, last_open: int,
                    candles: CandleGrid) -> list[tuple[int, int]]:
    """Inclusive open-time ranges to fetch: before the cache's first and after its last candle."""
    if cached.empty:
        return [(want_from, last_open)]
    first, last = int(cached["timestamp"].iloc[0]), int(cached["timestamp"].iloc[-1])
    ranges = []
    if want_from < first:
        ranges.append((want_from, candles.shift(first, -1)))
    if candles.shift(last, 1) <= last_open:
        ranges.append((candles.shift(last, 1), last_open))
    return ranges


def _rows_to_frame(rows: list[list[float]]) -> pd.DataFrame:
    array = np.asarray([row[:6] for row in rows], dtype=np.float64)
    frame = pd.DataFrame(array, columns=list(CACHE_COLUMNS))
    frame["timestamp"] = frame["timestamp"].astype(np.int64)
    return frame


def _latest_closed(cached: pd.DataFrame, last_open: int, num_candles: int, market: Market, path: Path) -> pd.DataFrame:
    closed = cached[cached["timestamp"] <= last_open].tail(num_candles)
    if closed.empty:
        raise HistoryError(f"{market.symbol} {market.timeframe}: the exchange returned no candles")
    if len(closed) < num_candles:
        log.warning("%s %s: only %d closed candle(s) available, %d asked",
                    market.symbol, market.timeframe, len(closed), num_candles)
    return normalize_candles(closed, source=str(path), repair=RepairPolicy.REPAIR, grid=market.grid)
