"""Strategies taking turns by candle time, and a decision log replayed, on real candles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from env.types import Action
from strategies.base import POSITION_INDEX, MarketContext, Strategy
from strategies.baselines import RandomStrategy, RsiReversion, SmaCross
from strategies.schedule import RecordedActions, StrategySchedule


@pytest.fixture(scope="module")
def context(btc_candles: pd.DataFrame) -> MarketContext:
    return MarketContext.from_candles(btc_candles.iloc[:2000])


@pytest.fixture(scope="module")
def observations(context: MarketContext) -> np.ndarray:
    """Observations whose position takes every value, so position-aware rules show it."""
    obs = np.zeros((len(context), 305), dtype=np.float32)
    obs[:, POSITION_INDEX] = np.random.default_rng(0).choice([-1.0, 0.0, 1.0], size=len(context))
    return obs


def every_form(strategy: Strategy, context: MarketContext, obs: np.ndarray) -> np.ndarray:
    """The backtest's decisions (``prepare``), checked against the live form (``act`` on the
    rolling window) and the batch form at every candle."""
    decide = strategy.prepare(context)
    backtest = np.array([decide(t, obs[t]) for t in range(len(context))])
    live = [strategy.act(obs[t], context.window(t, strategy.history)) for t in range(len(context))]
    np.testing.assert_array_equal(backtest, live)
    np.testing.assert_array_equal(strategy.act_batch(obs, context, np.arange(len(context))), backtest)
    return backtest


def test_each_candle_is_decided_by_the_strategy_whose_turn_it_is(context: MarketContext,
                                                                 observations: np.ndarray) -> None:
    sma, rsi, rnd = SmaCross(fast=5, slow=20, short=True), RsiReversion(short=True), RandomStrategy(3, 0.2)
    times = context.open_time_ms
    schedule = StrategySchedule([sma, rsi, sma, rnd], [times[300], times[700], times[1100], times[1500]])
    assert schedule.history == 20 and schedule.name.startswith("schedule(sma:fast=5")

    decided = every_form(schedule, context, observations)
    turns = [(0, 700, sma), (700, 1100, rsi), (1100, 1500, sma), (1500, 2000, rnd)]  # sma also before its turn
    for begin, end, strategy in turns:
        alone = every_form(strategy, context, observations)
        np.testing.assert_array_equal(decided[begin:end], alone[begin:end])
    assert len(set(decided[700:1100].tolist())) >= 3


def test_a_schedule_needs_one_increasing_start_per_strategy() -> None:
    with pytest.raises(ValueError, match="2 strategies for 1 start times"):
        StrategySchedule([SmaCross(), RsiReversion()], [1])
    with pytest.raises(ValueError, match="start times must increase"):
        StrategySchedule([SmaCross(), RsiReversion()], [5, 5])


def test_recorded_actions_replay_the_log_and_hold_elsewhere(context: MarketContext, observations: np.ndarray) -> None:
    logged = np.random.default_rng(1).integers(0, len(Action), size=1000)
    replay = RecordedActions(context.open_time_ms[500:1500].tolist(), logged.tolist())
    decided = every_form(replay, context, observations)
    np.testing.assert_array_equal(decided[500:1500], logged)
    assert set(decided[:500].tolist()) == set(decided[1500:].tolist()) == {Action.HOLD}
