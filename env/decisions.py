"""What a policy decides and when: action modes, the order -> trade mapping, the decision cadence.

**One order vocabulary.** Every strategy answers with an :data:`env.types.Order`: a trade
action (:class:`env.types.Action`, the seed's HOLD/BUY/SELL/CLOSE) or a target position
(:class:`env.types.Target`). An *action mode* is the set of orders a policy chooses among,
so its action space:

=============  ==========================================  =====================================
mode           policy action ``i`` asks for                use
=============  ==========================================  =====================================
``trade``      HOLD, BUY, SELL, CLOSE (the seed's)         the seed's contract
``target``     target short, flat, long                    a position, never "stuck" holding one
``long_flat``  target flat, long                           spot markets (no short selling)
=============  ==========================================  =====================================

The money step (:class:`env.execution.Account`) maps any order to the trade action that
carries it out (:func:`trade_action`) before the risk guard, so the env, the backtester and
the live engine share one mapping, the ledger keeps recording trade actions 0-3, and
strategies of different modes can take turns on one account (a fallback, then a model).

**The decision cadence.** A policy may decide every ``stride`` candles and hold in between
(:class:`DecisionCadence`). Decision candles are fixed by the clock, not by where a run
starts: the candle whose *close* falls on a multiple of ``stride`` candles of the exchange's
grid (:mod:`env.intervals`; stride 15 on 1m candles: the candles closing at :00, :15, :30,
:45, the closes of the 15m bars). So the training env, a backtest from any candle, a
restarted daemon and ``shadow verify`` decide on the very same candles.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from env.intervals import GRIDS, CandleGrid
from env.types import Action, Order, Side, Target


class ActionMode(StrEnum):
    """The orders a policy chooses among (see the module docstring)."""

    TRADE = "trade"
    TARGET = "target"
    LONG_FLAT = "long_flat"

    @property
    def orders(self) -> tuple[Order, ...]:
        """``orders[i]`` is what policy action ``i`` asks for."""
        return _ORDERS[self]

    @property
    def n_actions(self) -> int:
        """Size of the policy's discrete action space."""
        return len(_ORDERS[self])

    @property
    def can_short(self) -> bool:
        """Whether a policy of this mode can hold a short position (not on a spot market)."""
        return self is not ActionMode.LONG_FLAT


_ORDERS: dict[ActionMode, tuple[Order, ...]] = {
    ActionMode.TRADE: (Action.HOLD, Action.BUY, Action.SELL, Action.CLOSE),
    ActionMode.TARGET: (Target.SHORT, Target.FLAT, Target.LONG),
    ActionMode.LONG_FLAT: (Target.FLAT, Target.LONG),
}
_TRADE_TOWARDS: dict[int, int] = {Side.LONG: Action.BUY, Side.SHORT: Action.SELL, Side.FLAT: Action.CLOSE}


def trade_action(order: Order, side: int) -> int:
    """The trade action that carries out ``order`` when ``side`` is held.

    A trade action is itself; a target is HOLD when already held, else BUY, SELL or CLOSE
    (BUY while short and SELL while long reverse the position, as :class:`Action` says).

    Raises:
        ValueError: not an order (0-6).
    """
    if Action.HOLD <= order <= Action.CLOSE:
        return order
    if not Target.SHORT <= order <= Target.LONG:
        raise ValueError(f"invalid order {order!r}: expected a trade action 0-3 or a target position 4-6")
    target = order - Target.FLAT
    return Action.HOLD if target == side else _TRADE_TOWARDS[target]


@dataclass(frozen=True, slots=True)
class DecisionCadence:
    """Which candles a policy decides on: every candle (``stride`` 1), or those whose close is
    a multiple of ``stride`` candles on their grid (see the module docstring).

    Args:
        stride: candles per decision; the account holds on the candles in between.
        grid: the candles' grid (:func:`env.intervals.grid`, :func:`env.intervals.infer_grid`).
    """

    stride: int = 1
    grid: CandleGrid = GRIDS["1m"]

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise ValueError(f"DecisionCadence: stride {self.stride} must be >= 1")

    def decides(self, open_time_ms: int) -> bool:
        """Whether the candle opened at ``open_time_ms`` is a decision candle."""
        return self.stride == 1 or (self.grid.index(open_time_ms) + 1) % self.stride == 0

    def decision_candles(self, open_time_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """:meth:`decides` for every candle of a series at once."""
        if self.stride == 1:
            return np.ones(len(open_time_ms), dtype=bool)
        return np.asarray((self.grid.indices(open_time_ms) + 1) % self.stride == 0, dtype=bool)
