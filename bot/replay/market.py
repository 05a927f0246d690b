"""The exchange a replay pretends to be: candle files, a virtual clock and Bybit's answers.

The market knows nothing about sockets. It holds one series of real candles per symbol,
a virtual clock, and answers what Bybit would answer at that virtual time: the REST
kline rows (closed candles plus the forming one, newest first), the instruments list
ccxt loads, the websocket kline pushes, and for the linear perpetual each symbol also is,
its funding: the settled history (``/v5/market/funding/history``) and the ``tickers``
push announcing the next funding time and its rate. A series with a ``funding_rate``
column settles those rates; one without settles a zero rate at every funding time (every
:data:`FUNDING_INTERVAL_MINUTES`, as its instruments entry says), so money moves as on
spot. The first ``history`` candles are already closed when the replay starts, so a
client can warm up over REST.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from bot.bybit.markets import INTERVALS, Interval, kline_topic, ticker_topic
from config.errors import UserError
from env.candles import OHLCV_COLUMNS, load_candles
from env.funding import FUNDING_RATE_COLUMN
from env.intervals import infer_grid

log = logging.getLogger(__name__)

# Quote coins recognised when telling a symbol's base from its quote (longest first).
QUOTE_COINS: tuple[str, ...] = ("USDT", "USDC", "USDE", "FDUSD", "EUR", "BRL", "TRY", "DAI", "BTC", "ETH")
FUNDING_INTERVAL_MINUTES = 480
"""The funding interval the replay's instruments list gives every linear symbol (Bybit's usual 8 h)."""
_FUNDING_MS = FUNDING_INTERVAL_MINUTES * 60_000


class ReplayDataError(UserError, ValueError):
    """Candle data or replay options a replay cannot use."""


class ReplayClock:
    """The replay's virtual time, the "now" of both its REST and its websocket side."""

    def __init__(self, now_ms: int) -> None:
        self._now_ms = now_ms

    def now_ms(self) -> int:
        return self._now_ms

    def advance_to(self, now_ms: int) -> None:
        """Move forward (never back) to ``now_ms``."""
        self._now_ms = max(self._now_ms, now_ms)


@dataclass(frozen=True)
class ReplaySeries:
    """One symbol's candles: ``open_time_ms`` (int64) and ``ohlcv`` rows (float64, n x 5),
    and its ``funding_rate`` column when it has one (a rate per candle, :mod:`env.funding`)."""

    symbol: str
    open_time_ms: npt.NDArray[np.int64]
    ohlcv: npt.NDArray[np.float64]
    funding_rate: npt.NDArray[np.float64] | None = None

    @classmethod
    def from_frame(cls, symbol: str, frame: pd.DataFrame) -> ReplaySeries:
        """From a frame in :func:`env.candles.load_candles`'s layout."""
        funding = frame[FUNDING_RATE_COLUMN].to_numpy(np.float64) if FUNDING_RATE_COLUMN in frame else None
        return cls(symbol, frame["open_time_ms"].to_numpy(np.int64), frame[list(OHLCV_COLUMNS)].to_numpy(np.float64),
                   funding)

    @classmethod
    def from_file(cls, symbol: str, path: str | Path) -> ReplaySeries:
        """Load and validate a candle file (strict: a gap or a bad row is an error)."""
        return cls.from_frame(symbol, load_candles(path))


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` -> ``("BTC", "USDT")``, for the instruments list ccxt reads."""
    for quote in QUOTE_COINS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ReplayDataError(f"cannot tell the base and quote coin of {symbol!r}; "
                          f"end it in one of {', '.join(QUOTE_COINS)}")


class ReplayMarket:
    """Several symbols replayed side by side on one virtual clock.

    Args:
        series: one per symbol, all with the same interval, on Bybit's grid (weeks open on
            Monday 00:00 UTC, months on the 1st). Series that start at different times are
            shifted onto the first one's start (logged) and all are cut to the shortest
            length, so candle ``i`` of every symbol closes at the same moment.
        history: candles already closed when the replay starts.

    The candle at index ``position`` is the one forming; ``clock`` is inside it.
    """

    def __init__(self, series: Sequence[ReplaySeries], *, history: int) -> None:
        if not series:
            raise ReplayDataError("no candle series to replay")
        symbols = [s.symbol for s in series]
        if len(set(symbols)) != len(symbols):
            raise ReplayDataError(f"a symbol is given twice: {', '.join(symbols)}")
        for s in series:
            split_symbol(s.symbol)
        grids = {s.symbol: infer_grid(s.open_time_ms) for s in series}
        names = {found.name for found in grids.values()}
        if len(names) != 1:
            raise ReplayDataError(f"the series have different intervals: "
                                  f"{', '.join(f'{s} {g.name}' for s, g in grids.items())}")
        name = names.pop()
        if name not in INTERVALS:
            raise ReplayDataError(f"candles {grids[symbols[0]].describe()} apart are not on a Bybit interval's grid "
                                  f"(weeks open Monday 00:00 UTC, months on the 1st 00:00 UTC)")
        self.interval: Interval = INTERVALS[name]
        length = min(len(s.open_time_ms) for s in series)
        if not 1 <= history < length:
            raise ReplayDataError(f"history must be between 1 and {length - 1} candles (the data has {length}), "
                                  f"not {history}")
        start_ms = int(series[0].open_time_ms[0])
        for s in series:
            if int(s.open_time_ms[0]) != start_ms:
                log.warning("replay: %s starts at %d, shifted by %+d ms onto %s's start",
                            s.symbol, int(s.open_time_ms[0]), start_ms - int(s.open_time_ms[0]), series[0].symbol)
        self.symbols: tuple[str, ...] = tuple(symbols)
        candles = self.interval.grid
        self.open_time_ms = candles.opens_ms(candles.index(start_ms) + np.arange(length, dtype=np.int64))
        self._ohlcv = {s.symbol: s.ohlcv[:length] for s in series}
        self._funding = {s.symbol: self._settlements(s.funding_rate) for s in series}
        self.history = history
        self.position = history
        self.clock = ReplayClock(int(self.open_time_ms[history]))

    @property
    def length(self) -> int:
        """Candles per symbol, history included."""
        return len(self.open_time_ms)

    @property
    def finished(self) -> bool:
        """Every candle has closed."""
        return self.position >= self.length

    def topic(self, symbol: str) -> str:
        return kline_topic(symbol, self.interval)

    def _settlements(self, funding_rate: npt.NDArray[np.float64] | None) -> dict[int, float]:
        """Funding time -> rate over the data: a rate at every funding time (from the
        column, 0 without one), plus any other row of the column with a rate."""
        times = self.open_time_ms
        first = -(-int(times[0]) // _FUNDING_MS) * _FUNDING_MS
        last_close = self.interval.grid.close_ms(int(times[-1]))  # the last candle settles what falls inside it
        settled = dict.fromkeys(range(first, last_close + 1, _FUNDING_MS), 0.0)
        if funding_rate is not None:
            rates = funding_rate[: len(times)]
            settled.update({int(times[i]): float(rates[i]) for i in range(len(times))
                            if int(times[i]) in settled or rates[i] != 0.0})
        return dict(sorted(settled.items()))

    # -- time ------------------------------------------------------------------

    def form(self, index: int, fraction: float) -> None:
        """Candle ``index`` is forming, ``fraction`` (0..1) of the way through."""
        self.position = index
        self.clock.advance_to(int(self.open_time_ms[index]) + int(fraction * self._length_ms(index)))

    def close(self, index: int) -> None:
        """Candle ``index`` has closed; the next one starts forming."""
        self.position = index + 1
        self.clock.advance_to(self.interval.grid.close_ms(int(self.open_time_ms[index])))

    # -- what Bybit would answer -----------------------------------------------

    def candle_values(self, symbol: str, index: int, fraction: float = 1.0) -> tuple[float, float, float, float, float]:
        """Candle ``index`` as it looks ``fraction`` of the way through (1.0 = final).

        A forming candle moves from its open towards its final close, high and low, with
        volume accruing: plausible intermediate states that differ from the final one, so
        a client that takes a forming candle for a closed one is caught.
        """
        o, h, low, c, v = (float(x) for x in self._ohlcv[symbol][index])
        if fraction >= 1.0:
            return o, h, low, c, v
        return o, o + (h - o) * fraction, o - (o - low) * fraction, o + (c - o) * fraction, v * fraction

    def kline_push(self, symbol: str, index: int, fraction: float = 1.0) -> str:
        """The websocket kline message for candle ``index`` (``confirm`` only when final)."""
        o, h, low, c, v = self.candle_values(symbol, index, fraction)
        start = int(self.open_time_ms[index])
        now = self.clock.now_ms()
        return json.dumps({
            "topic": self.topic(symbol),
            "type": "snapshot",
            "ts": now,
            "data": [{
                "start": start, "end": self.interval.grid.close_ms(start) - 1, "interval": self.interval.bybit,
                "open": repr(o), "close": repr(c), "high": repr(h), "low": repr(low),
                "volume": repr(v), "turnover": repr(v * c), "confirm": fraction >= 1.0, "timestamp": now,
            }],
        })

    def kline_rows(self, symbol: str, start_ms: int | None, end_ms: int | None, limit: int) -> list[list[str]]:
        """``/v5/market/kline`` rows: closed candles and the forming one, newest first.

        The newest ``limit`` rows with ``start <= open time <= end`` (``end`` defaults to
        now), as Bybit anchors a wider window at its end. A client that pages forward must
        therefore ask for windows of at most ``limit`` candles.
        """
        visible = min(self.position + 1, self.length)  # closed ones plus the forming one
        times = self.open_time_ms[:visible]
        first = 0 if start_ms is None else int(np.searchsorted(times, start_ms, "left"))
        stop = visible if end_ms is None else int(np.searchsorted(times, end_ms, "right"))
        rows = []
        for index in reversed(range(max(first, stop - limit), stop)):
            fraction = 1.0 if index < self.position else self._forming_fraction(index)
            o, h, low, c, v = self.candle_values(symbol, index, fraction)
            rows.append([str(int(times[index])), repr(o), repr(h), repr(low), repr(c), repr(v), repr(v * c)])
        return rows

    def funding_history(self, symbol: str, start_ms: int | None, end_ms: int | None,
                        limit: int) -> list[dict[str, str]]:
        """``/v5/market/funding/history`` rows: the settlements up to now inside
        ``[start_ms, end_ms]``, newest first, the newest ``limit`` of them (as Bybit does)."""
        now = self.clock.now_ms()
        high = now if end_ms is None else min(end_ms, now)
        low = -(2**62) if start_ms is None else start_ms
        rows = [(t, r) for t, r in self._funding[symbol].items() if low <= t <= high]
        return [{"symbol": symbol, "fundingRate": repr(rate), "fundingRateTimestamp": str(t)}
                for t, rate in reversed(rows[-limit:])]

    def next_funding(self, symbol: str) -> tuple[int, float]:
        """The next funding time after now and the rate it will settle (after the data:
        the next funding interval's time, at 0)."""
        now = self.clock.now_ms()
        later = [(t, r) for t, r in self._funding[symbol].items() if t > now]
        return later[0] if later else ((now // _FUNDING_MS + 1) * _FUNDING_MS, 0.0)

    def ticker_push(self, symbol: str, kind: str = "delta") -> str:
        """The linear ``tickers.{symbol}`` push: the next funding time and the rate Bybit
        announces for it (its predicted rate; the replay knows the settled one)."""
        next_ms, rate = self.next_funding(symbol)
        index = min(self.position, self.length) - 1
        last = repr(float(self._ohlcv[symbol][max(index, 0)][3]))
        return json.dumps({"topic": ticker_topic(symbol), "type": kind, "ts": self.clock.now_ms(),
                           "data": {"symbol": symbol, "lastPrice": last, "markPrice": last, "fundingRate": repr(rate),
                                    "nextFundingTime": str(next_ms)}, "cs": 1})

    def instruments(self, category: str, status: str | None) -> list[dict[str, Any]]:
        """``/v5/market/instruments-info``: every replayed symbol, listed for spot and linear."""
        if category not in ("spot", "linear") or status not in (None, "Trading"):
            return []
        out: list[dict[str, Any]] = []
        for symbol in self.symbols:
            base, quote = split_symbol(symbol)
            common = {"symbol": symbol, "baseCoin": base, "quoteCoin": quote, "status": "Trading"}
            if category == "spot":
                out.append(common | {
                    "innovation": "0", "marginTrading": "none",
                    "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.00000001",
                                      "minOrderQty": "0.000001", "maxOrderQty": "1000000",
                                      "minOrderAmt": "1", "maxOrderAmt": "10000000"},
                    "priceFilter": {"tickSize": "0.01"},
                })
            else:
                out.append(common | {
                    "contractType": "LinearPerpetual", "launchTime": str(int(self.open_time_ms[0])),
                    "deliveryTime": "0", "priceScale": "2", "settleCoin": quote,
                    "fundingInterval": FUNDING_INTERVAL_MINUTES,
                    "unifiedMarginTrade": True,
                    "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                    "priceFilter": {"minPrice": "0.01", "maxPrice": "10000000", "tickSize": "0.01"},
                    "lotSizeFilter": {"maxOrderQty": "1000000", "minOrderQty": "0.001", "qtyStep": "0.001",
                                      "postOnlyMaxOrderQty": "1000000", "minNotionalValue": "5"},
                })
        return out

    def _forming_fraction(self, index: int) -> float:
        return (self.clock.now_ms() - int(self.open_time_ms[index])) / self._length_ms(index)

    def _length_ms(self, index: int) -> int:
        open_ms = int(self.open_time_ms[index])
        return self.interval.grid.close_ms(open_ms) - open_ms
