"""Rule-based baselines: what a PPO policy has to beat to be worth anything.

Each baseline states, per candle, the *position it wants* (long, flat, short, or "keep
whatever I hold") from closes up to that candle only; the action is whatever moves the
current position there: ``BUY`` to go long, ``SELL`` to go short, ``CLOSE`` to go flat,
``HOLD`` when the position already matches. So a decision log reads as trades, not as a
stream of no-op BUYs.

=========================  ===================================================================
spec                       rule at the close of candle ``t``
=========================  ===================================================================
``flat``                   always flat: never trades (the cost-free benchmark)
``buy_and_hold``           long from the first decision to the end
``sma:fast=10,slow=50``    long while SMA(fast) > SMA(slow); below it flat, or short with
                           ``short=true``; equal: keep
``rsi:period=14,...``      mean reversion on Cutler's RSI (simple averages of gains and losses
                           over ``period`` changes): RSI < ``lower`` -> long; RSI > ``upper`` ->
                           short with ``short=true``, else flat; a long exits when RSI >=
                           ``exit``, a short when RSI <= ``exit`` (position-aware)
``random:seed=0,...``      each candle, with probability ``trade_prob``, one of long/short/flat
                           uniformly; drawn from a hash of (seed, candle open time), so the same
                           candle gets the same draw in a backtest and live
=========================  ===================================================================

Why Cutler's RSI rather than Wilder's: Wilder's smoothing remembers every candle since
the start, so a live engine with a rolling window could never reproduce the backtest's
value exactly; simple averages over a fixed window can, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from env.types import Action, Observation, Side
from strategies.base import (
    POSITION_INDEX,
    ActionArray,
    Decider,
    IndexArray,
    MarketContext,
    ObservationBatch,
    StrategySpecError,
)

KEEP = 2
"""Target meaning "keep the current position" (Side values are -1, 0, +1)."""

_POSITIONS = (Side.SHORT, Side.FLAT, Side.LONG)  # column order of a decision table
_COLUMN = {side: column for column, side in enumerate(_POSITIONS)}
_MOVE_TO = {Side.LONG: Action.BUY, Side.SHORT: Action.SELL, Side.FLAT: Action.CLOSE}

TargetTable = npt.NDArray[np.int8]
"""``(n_candles, 3)`` targets, one column per current position (short, flat, long)."""


class _TableStrategy:
    """Shared machinery: a subclass gives the target table of a series; ``act``,
    ``act_batch`` and ``prepare`` all read that one table, so they cannot disagree."""

    @property
    def history(self) -> int:
        """Candles the rule looks at, the decision candle included."""
        return 1

    def targets(self, context: MarketContext) -> TargetTable:
        """Target position per candle (rows) and current position (columns), causal."""
        raise NotImplementedError

    def decisions(self, context: MarketContext) -> ActionArray:
        """``(n_candles, 3)`` actions: column ``position + 1`` is the action to take
        when holding ``position``."""
        targets = self.targets(context)
        actions = np.full(targets.shape, int(Action.HOLD), dtype=np.int64)
        for column, position in enumerate(_POSITIONS):
            wanted = targets[:, column]
            for side, action in _MOVE_TO.items():
                if side != position:
                    actions[wanted == side, column] = int(action)
        return actions

    def act(self, obs: Observation, context: MarketContext) -> Action:
        if len(context) == 0:
            return Action.HOLD
        window = context.window(len(context) - 1, self.history)
        return Action(int(self.decisions(window)[-1, _column(obs[POSITION_INDEX])]))

    def act_batch(self, obs: ObservationBatch, context: MarketContext, steps: IndexArray) -> ActionArray:
        columns = np.rint(obs[:, POSITION_INDEX]).astype(np.int64) + 1
        return self.decisions(context)[np.asarray(steps, dtype=np.int64), columns]

    def prepare(self, context: MarketContext) -> Decider:
        rows: list[list[int]] = self.decisions(context).tolist()

        def decide(t: int, obs: Observation) -> int:
            return rows[t][_column(obs[POSITION_INDEX])]

        return decide


def _column(position: float) -> int:
    return round(float(position)) + 1


def _same_target(target: npt.NDArray[np.int8]) -> TargetTable:
    """A position-blind rule: the same target whatever is held."""
    return np.repeat(target[:, None], 3, axis=1)


def rolling_sum(x: npt.NDArray[np.float64], window: int) -> npt.NDArray[np.float64]:
    """Sum of each full window, ``out[i] = x[i] + ... + x[i + window - 1]``.

    Added left to right per window, so a window's sum has the same bits whether it
    sits in a live rolling window or in a whole backtest series.
    """
    if len(x) < window:
        return np.empty(0)
    windows = sliding_window_view(x, window)
    total = windows[:, 0].copy()
    for k in range(1, window):
        total += windows[:, k]
    return total


class _ConstantTarget(_TableStrategy):
    """Wants the same position at every candle."""

    target: ClassVar[Side]
    label: ClassVar[str]

    @property
    def name(self) -> str:
        return self.label

    def targets(self, context: MarketContext) -> TargetTable:
        return np.full((len(context), 3), self.target, dtype=np.int8)


@dataclass(frozen=True)
class Flat(_ConstantTarget):
    """Never holds a position (closes one if it finds one)."""

    target = Side.FLAT
    label = "flat"


@dataclass(frozen=True)
class BuyAndHold(_ConstantTarget):
    """Long from the first decision on."""

    target = Side.LONG
    label = "buy_and_hold"


@dataclass(frozen=True)
class SmaCross(_TableStrategy):
    """Trend following: long while the fast simple moving average is above the slow one.

    Args:
        fast: candles in the fast average.
        slow: candles in the slow average (> fast).
        short: go short (instead of flat) while fast < slow.
    """

    fast: int = 10
    slow: int = 50
    short: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise StrategySpecError(f"sma: need 1 <= fast < slow, got fast={self.fast}, slow={self.slow}")

    @property
    def name(self) -> str:
        return f"sma:fast={self.fast},slow={self.slow},short={str(self.short).lower()}"

    @property
    def history(self) -> int:
        return self.slow

    def targets(self, context: MarketContext) -> TargetTable:
        closes = context.closes
        target = np.full(len(closes), KEEP, dtype=np.int8)
        slow = rolling_sum(closes, self.slow) / self.slow
        if len(slow):
            fast = rolling_sum(closes, self.fast)[self.slow - self.fast :] / self.fast
            valid = target[self.slow - 1 :]
            valid[fast > slow] = Side.LONG
            valid[fast < slow] = Side.SHORT if self.short else Side.FLAT
        return _same_target(target)


def cutler_rsi(closes: npt.NDArray[np.float64], period: int) -> npt.NDArray[np.float64]:
    """RSI in [0, 100] from simple averages of the last ``period`` gains and losses.

    ``NaN`` for the first ``period`` candles (not enough changes yet); 50 when the window
    has no move at all.
    """
    rsi = np.full(len(closes), np.nan)
    if len(closes) <= period:
        return rsi
    change = np.diff(closes)
    gains = rolling_sum(np.maximum(change, 0.0), period)
    losses = rolling_sum(np.maximum(-change, 0.0), period)
    moves = gains + losses
    out = np.full(len(moves), 50.0)
    np.divide(100.0 * gains, moves, out=out, where=moves > 0)
    rsi[period:] = out
    return rsi


@dataclass(frozen=True)
class RsiReversion(_TableStrategy):
    """Mean reversion: buy oversold, sell (or exit) overbought, exit at the middle.

    Args:
        period: price changes in the RSI window.
        lower: RSI below this opens a long.
        upper: RSI above this opens a short (``short=true``) or closes a long.
        exit: a long closes once RSI >= exit, a short once RSI <= exit.
        short: allow short positions.
    """

    period: int = 14
    lower: float = 30.0
    upper: float = 70.0
    exit: float = 50.0
    short: bool = False

    def __post_init__(self) -> None:
        if self.period < 1:
            raise StrategySpecError(f"rsi: period must be >= 1, got {self.period}")
        if not 0 < self.lower <= self.exit <= self.upper < 100:
            raise StrategySpecError(
                f"rsi: need 0 < lower <= exit <= upper < 100, got lower={self.lower}, "
                f"exit={self.exit}, upper={self.upper}"
            )

    @property
    def name(self) -> str:
        return (f"rsi:period={self.period},lower={self.lower:g},upper={self.upper:g},"
                f"exit={self.exit:g},short={str(self.short).lower()}")

    @property
    def history(self) -> int:
        return self.period + 1

    def targets(self, context: MarketContext) -> TargetTable:
        rsi = cutler_rsi(context.closes, self.period)
        table = np.full((len(rsi), 3), KEEP, dtype=np.int8)
        short, flat, long = _COLUMN[Side.SHORT], _COLUMN[Side.FLAT], _COLUMN[Side.LONG]
        overbought = Side.SHORT if self.short else Side.FLAT
        # Later assignments win: the exit first, then the stronger entry signals.
        table[rsi >= self.exit, long] = Side.FLAT
        table[rsi <= self.exit, short] = Side.FLAT
        table[rsi > self.upper, long] = overbought
        if self.short:
            table[rsi > self.upper, flat] = Side.SHORT
        table[rsi < self.lower, flat] = Side.LONG
        table[rsi < self.lower, short] = Side.LONG
        return table


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64 finaliser: a well-mixed 64-bit hash (wrap-around arithmetic)."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def candle_uniforms(seed: int, open_time_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """A uniform draw in [0, 1) per candle, a pure function of (seed, open time)."""
    seed_hash = _splitmix64(np.array([seed], dtype=np.int64).view(np.uint64))
    z = _splitmix64(open_time_ms.astype(np.int64).view(np.uint64) ^ seed_hash)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


@dataclass(frozen=True)
class RandomStrategy(_TableStrategy):
    """Random entries and exits: the baseline for "no skill, same kind of turnover".

    Args:
        seed: seed of the per-candle hash.
        trade_prob: probability per candle of wanting a new position (long, short or
            flat, one third each); otherwise keep.
    """

    seed: int = 0
    trade_prob: float = 0.05

    def __post_init__(self) -> None:
        if not 0 <= self.trade_prob <= 1:
            raise StrategySpecError(f"random: trade_prob must be in [0, 1], got {self.trade_prob}")

    @property
    def name(self) -> str:
        return f"random:seed={self.seed},trade_prob={self.trade_prob:g}"

    def targets(self, context: MarketContext) -> TargetTable:
        u = candle_uniforms(self.seed, context.open_time_ms)
        target = np.full(len(u), KEEP, dtype=np.int8)
        trades = u < self.trade_prob
        if self.trade_prob > 0:
            pick = np.minimum((u[trades] * (3.0 / self.trade_prob)).astype(np.int64), 2)
            target[trades] = np.array([Side.LONG, Side.SHORT, Side.FLAT], dtype=np.int8)[pick]
        return _same_target(target)
