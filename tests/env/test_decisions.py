"""Action modes, the order -> trade action mapping and the clock-fixed decision cadence."""

from __future__ import annotations

import numpy as np
import pytest

from env.decisions import ActionMode, DecisionCadence, trade_action
from env.intervals import grid
from env.types import Action, Side, Target

MINUTE = 60_000


@pytest.mark.parametrize(("order", "side", "expected"), [
    (Target.LONG, Side.FLAT, Action.BUY), (Target.LONG, Side.LONG, Action.HOLD), (Target.LONG, Side.SHORT, Action.BUY),
    (Target.SHORT, Side.FLAT, Action.SELL), (Target.SHORT, Side.SHORT, Action.HOLD),
    (Target.SHORT, Side.LONG, Action.SELL), (Target.FLAT, Side.FLAT, Action.HOLD),
    (Target.FLAT, Side.LONG, Action.CLOSE), (Target.FLAT, Side.SHORT, Action.CLOSE),
])
def test_a_target_becomes_the_trade_action_that_reaches_it(order: int, side: int, expected: int) -> None:
    assert trade_action(order, side) == expected


@pytest.mark.parametrize("side", [Side.SHORT, Side.FLAT, Side.LONG])
def test_a_trade_action_is_itself_whatever_is_held(side: int) -> None:
    assert [trade_action(a, side) for a in Action] == list(Action)


def test_each_mode_names_its_orders() -> None:
    assert ActionMode.TRADE.orders == (0, 1, 2, 3) and ActionMode.TRADE.n_actions == 4
    assert ActionMode.TARGET.orders == (Target.SHORT, Target.FLAT, Target.LONG)
    assert ActionMode.LONG_FLAT.orders == (Target.FLAT, Target.LONG) and not ActionMode.LONG_FLAT.can_short
    assert ActionMode("target").can_short and ActionMode.TRADE.can_short


def test_a_stride_decides_on_the_candles_closing_on_its_multiples_of_the_interval() -> None:
    quarter = DecisionCadence(15, grid("1m"))
    hour = 1_700_000_400_000 - 1_700_000_400_000 % 3_600_000  # a candle opening on the hour
    decided = [m for m in range(60) if quarter.decides(hour + m * MINUTE)]
    assert decided == [14, 29, 44, 59]  # their closes: :15, :30, :45, :00
    times = np.arange(hour, hour + 3_600_000, MINUTE, dtype=np.int64)
    assert np.flatnonzero(quarter.decision_candles(times)).tolist() == decided
    assert DecisionCadence(1, grid("1m")).decision_candles(times).all()
    assert all(DecisionCadence(1, grid("1m")).decides(hour + m * MINUTE) for m in range(60))
    with pytest.raises(ValueError, match="stride 0"):
        DecisionCadence(0)


def test_a_weekly_stride_counts_mondays_on_bybits_grid() -> None:
    monday = 1_699_833_600_000  # 2023-11-13 00:00 UTC, a Monday
    weeks = np.array([monday + k * 7 * 86_400_000 for k in range(8)], dtype=np.int64)
    fortnight = DecisionCadence(2, grid("1w"))
    # week 2,810 since the first Monday (1970-01-05) closes on an odd count: the next one decides
    assert np.flatnonzero(fortnight.decision_candles(weeks)).tolist() == [1, 3, 5, 7]
    assert [fortnight.decides(int(t)) for t in weeks] == [False, True] * 4
