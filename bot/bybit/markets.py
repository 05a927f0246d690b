"""The one place that maps between Shadow's names and Bybit's and ccxt's.

- Intervals: Shadow and ccxt say ``1m``/``1h``/``1d``/``1w``/``1M``; Bybit's topics and
  REST say ``1``/``60``/``D``/``W``/``M``. :data:`INTERVALS` holds both spellings and the
  grid the candles open on (:mod:`env.intervals`: weeks on Mondays, calendar months).
- Symbols: Bybit's ``BTCUSDT`` is ccxt's ``BTC/USDT`` on spot and ``BTC/USDT:USDT``
  on linear perpetuals; :func:`ccxt_symbol` reads the answer from ccxt's loaded markets
  instead of guessing from the text (``1000PEPEUSDT`` or USDC perps have no
  guessable split).
- Topics: ``kline.{bybit interval}.{symbol}``; a linear perpetual's funding announcements
  come on ``tickers.{symbol}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from config.errors import UserError
from env.intervals import GRIDS, CandleGrid

Category = Literal["spot", "linear"]


@dataclass(frozen=True, slots=True)
class Interval:
    """One candle interval in both spellings, with the grid its candles open on."""

    name: str  # Shadow/ccxt timeframe, e.g. "1m" (what ``Candle.interval`` holds)
    bybit: str  # Bybit topic/REST value, e.g. "1"
    grid: CandleGrid  # where its candles open: Monday-based weeks, calendar months (env.intervals)


_BYBIT_NAMES = {"1m": "1", "3m": "3", "5m": "5", "15m": "15", "30m": "30", "1h": "60", "2h": "120", "4h": "240",
                "6h": "360", "12h": "720", "1d": "D", "1w": "W", "1M": "M"}
INTERVALS: dict[str, Interval] = {name: Interval(name, bybit, GRIDS[name]) for name, bybit in _BYBIT_NAMES.items()}
INTERVALS_BY_BYBIT: dict[str, Interval] = {iv.bybit: iv for iv in INTERVALS.values()}


class UnknownSymbolError(UserError, ValueError):
    """A configured symbol the exchange does not list in the configured category."""


def interval(name: str) -> Interval:
    """The :class:`Interval` called ``name`` (``"1m"``), or a clear error listing the valid ones."""
    try:
        return INTERVALS[name]
    except KeyError:
        raise ValueError(f"unknown interval {name!r}; use one of {', '.join(INTERVALS)}") from None


def kline_topic(symbol: str, iv: Interval) -> str:
    """The websocket topic of ``symbol``'s candles, e.g. ``kline.1.BTCUSDT``."""
    return f"kline.{iv.bybit}.{symbol}"


def ticker_topic(symbol: str) -> str:
    """The websocket topic of ``symbol``'s ticker (a perpetual's funding rate and next funding
    time), e.g. ``tickers.BTCUSDT``."""
    return f"tickers.{symbol}"


def ccxt_symbol(markets_by_id: Mapping[str, Sequence[Mapping[str, Any]]], symbol: str, category: Category) -> str:
    """ccxt's unified symbol for a Bybit symbol in a category, from ``exchange.markets_by_id``.

    Raises:
        UnknownSymbolError: the exchange lists no such market in that category.
    """
    for market in markets_by_id.get(symbol, ()):
        if (category == "spot" and market.get("spot")) or (
            category == "linear" and market.get("linear") and market.get("swap")
        ):
            return str(market["symbol"])
    raise UnknownSymbolError(f"symbol {symbol!r} is not a Bybit {category} market (check [feed] symbols)")
