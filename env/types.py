"""Shapes shared by every layer: the action set, the candle record, the observation type.

Named once here (as SB3's ``type_aliases.py`` does) so the env, the backtester and the
live daemon cannot drift apart on what an action number or a candle key means.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NotRequired, TypedDict

import numpy as np
import numpy.typing as npt

Observation = npt.NDArray[np.float32]


class Action(IntEnum):
    """The four discrete actions of ``CryptoTradingEnv`` (the seed README's contract).

    - ``HOLD``  (0): do nothing.
    - ``BUY``   (1): flat -> open long; short -> close the short and open a long; long -> no-op.
    - ``SELL``  (2): mirror of BUY: flat -> open short; long -> close and open short; short -> no-op.
    - ``CLOSE`` (3): any position -> flat; flat -> no-op.

    Decisions are taken at a candle's close and filled at that close (± slippage).
    """

    HOLD = 0
    BUY = 1
    SELL = 2
    CLOSE = 3


class Target(IntEnum):
    """Target-position orders: "hold this position after the fill", whatever is held now.

    A strategy in the ``target`` or ``long_flat`` action mode (:mod:`env.decisions`) asks
    for a target; the money step (:class:`env.execution.Account`) turns it into the trade
    action that reaches that position from the one held (``SHORT`` while long is a SELL,
    a reversal), *before* the risk guard, and the ledger records that trade action.
    Numbered after :class:`Action`, so one integer names any order unambiguously.
    """

    SHORT = 4
    FLAT = 5
    LONG = 6


Order = int
"""What a strategy asks the money step for: an :class:`Action` (0-3) or a :class:`Target` (4-6)."""


class Side(IntEnum):
    """Direction of the open position; also the ``position`` observation feature."""

    SHORT = -1
    FLAT = 0
    LONG = 1


@dataclass(frozen=True, slots=True)
class Candle:
    """One closed OHLCV candle. ``(symbol, interval, open_time_ms)`` is its identity,
    the same key the SQLite ledger uses."""

    symbol: str
    interval: str
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class EnvInfo(TypedDict):
    """``info`` of ``CryptoTradingEnv.reset`` and ``step``: the account at the current
    candle's close (the seed's keys first), read by the backtester and the training callbacks.

    All money is in the quote currency. Read from :class:`env.portfolio.Portfolio`.
    """

    balance: float
    """Cash (realised, net of fees)."""
    equity: float
    total_pnl: float
    realized_pnl: float
    """Gross of fees."""
    unrealized_pnl: float
    fees_paid: float
    funding_paid: float
    """Perpetual funding paid, net of funding received (0 without a ``funding_rate`` column)."""
    win_rate: float
    """Share of winning round trips; 0.0 before the first one (see ``env.portfolio.win_rate``)."""
    total_trades: int
    position: int
    """-1 short, 0 flat, +1 long."""
    max_drawdown: float
    price: float
    """The close the account is marked at."""
    timestamp_ms: int
    """Open time of that candle."""
    step: int
    """Index of that candle in the env's candles."""
    fills: NotRequired[int]
    """``step`` only: fills of the action just taken."""
    decision_equity: NotRequired[float]
    """``step`` only: equity right after the action's fills, before the next mark."""
