"""The one place that maps between Shadow's names and Bybit's and ccxt's.

- Intervals: Shadow and ccxt say ``1m``/``1h``/``1d``; Bybit's topics and REST say
  ``1``/``60``/``D``. :data:`INTERVALS` holds both spellings and the length in ms.
- Symbols: Bybit's ``BTCUSDT`` is ccxt's ``BTC/USDT`` on spot and ``BTC/USDT:USDT``
  on linear perpetuals; :func:`ccxt_symbol` reads the answer from ccxt's loaded markets
  instead of guessing from the text (``1000PEPEUSDT`` or USDC perps have no
  guessable split).
- Topics: ``kline.{bybit interval}.{symbol}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from config.errors import UserError

Category = Literal["spot", "linear"]



@dataclass(frozen=True, slots=True)
class Interval:
    """One candle length in its three spellings."""

    name: str  # Shadow/ccxt timeframe, e.g. "1m" (what ``Candle.interval`` holds)
    bybit: str  # Bybit topic/REST value, e.g. "1"
    ms: int


_MINUTE = 60_000
INTERVALS: dict[str, Interval] = {
    iv.name: iv
    for iv in (
        Interval("1m", "1", _MINUTE),
        Interval("3m", "3", 3 * _MINUTE),
        Interval("5m", "5", 5 * _MINUTE),
        Interval("15m", "15", 15 * _MINUTE),
        Interval("30m", "30", 30 * _MINUTE),
        Interval("1h", "60", 60 * _MINUTE),
        Interval("2h", "120", 120 * _MINUTE),
        Interval("4h", "240", 240 * _MINUTE),
        Interval("6h", "360", 360 * _MINUTE),
        Interval("12h", "720", 720 * _MINUTE),
        Interval("1d", "D", 1440 * _MINUTE),
        Interval("1w", "W", 7 * 1440 * _MINUTE),
        # Bybit's "M" (calendar month) has no fixed length, so gap arithmetic cannot use it.
    )
}
INTERVALS_BY_BYBIT: dict[str, Interval] = {iv.bybit: iv for iv in INTERVALS.values()}
INTERVALS_BY_MS: dict[int, Interval] = {iv.ms: iv for iv in INTERVALS.values()}


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
