"""Baselines trade exactly as their rules say, and only on data up to the decision candle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from config.settings import EnvSettings
from env.types import Action, Side
from strategies.base import POSITION_INDEX, MarketContext
from strategies.baselines import (
    BuyAndHold,
    Flat,
    RandomStrategy,
    RsiReversion,
    SmaCross,
    candle_uniforms,
    cutler_rsi,
)
from tests.conftest import PREFIX, make_candles
from trainer.evaluation.backtest import make_env, run_backtest

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000


def candles(segment: list[float]) -> pd.DataFrame:
    """Warm-up candles at the segment's first price, then ``segment`` (index PREFIX on)."""
    return make_candles([segment[0]] * PREFIX + segment, start_ms=T0)


def trades_of(strategy, segment: list[float]) -> tuple[list[tuple], object]:
    """(side, entry candle, exit candle, entry price, exit price) of each round trip,
    candles counted from the first decision; and the position still open."""
    result = run_backtest(strategy, make_env(candles(segment), EnvSettings()))
    index = {T0 + 60_000 * (PREFIX + i): i for i in range(len(segment))}
    trades = [(int(t.side), index[t.entry_time_ms], index[t.exit_time_ms], t.entry_price, t.exit_price)
              for t in result.trades]
    return trades, result


SMA_SEGMENT = [100, 100, 104, 108, 108, 104, 100, 96, 100, 104, 104]
# candle:       0    1    2    3    4    5    6   7    8    9   10 (10: final mark only)
# SMA2 vs SMA4: =    =    >    >    >    =    <   <    <    >


def test_sma_cross_long_only_trades_exactly_as_computed_by_hand():
    trades, result = trades_of(SmaCross(fast=2, slow=4), SMA_SEGMENT)
    assert trades == [(Side.LONG, 2, 6, 104.0, 100.0)]
    assert result.open_position.side == Side.LONG and result.open_position.entry_price == 104.0
    qty = 100.0 / 104.0  # all equity at the fill price
    (trade,) = result.trades
    assert trade.qty == pytest.approx(qty)
    assert trade.gross_pnl == pytest.approx(qty * (100.0 - 104.0))
    assert trade.fees == pytest.approx(0.0004 * qty * (104.0 + 100.0))


def test_sma_cross_with_shorts_reverses_at_each_cross():
    trades, result = trades_of(SmaCross(fast=2, slow=4, short=True), SMA_SEGMENT)
    assert trades == [(Side.LONG, 2, 6, 104.0, 100.0), (Side.SHORT, 6, 9, 100.0, 104.0)]
    assert result.open_position.side == Side.LONG


RSI_SEGMENT = [100, 98, 97, 98, 101, 99, 97, 99, 99]
# RSI(2):       50   0   0  50  100  60   0  50  (last: final mark only)


def test_cutler_rsi_by_hand():
    rsi = cutler_rsi(np.array(RSI_SEGMENT, dtype=float), period=2)
    assert np.isnan(rsi[:2]).all()
    np.testing.assert_array_equal(rsi[2:], [0.0, 50.0, 100.0, 60.0, 0.0, 50.0, 100.0])


def test_rsi_long_only_buys_oversold_and_exits_at_the_middle():
    trades, result = trades_of(RsiReversion(period=2), RSI_SEGMENT)
    assert trades == [(Side.LONG, 1, 3, 98.0, 98.0), (Side.LONG, 6, 7, 97.0, 99.0)]
    assert result.open_position is None


def test_rsi_with_shorts_sells_overbought_and_reverses_on_oversold():
    trades, _ = trades_of(RsiReversion(period=2, short=True), RSI_SEGMENT)
    assert trades == [(Side.LONG, 1, 3, 98.0, 98.0), (Side.SHORT, 4, 6, 101.0, 97.0), (Side.LONG, 6, 7, 97.0, 99.0)]


def test_buy_and_hold_buys_once_at_the_first_decision_and_never_sells():
    trades, result = trades_of(BuyAndHold(), SMA_SEGMENT)
    assert trades == []
    assert [(f.side, f.time_ms, f.price) for f in result.fills] == [(Side.LONG, T0 + 60_000 * PREFIX, 100.0)]
    assert (result.positions == Side.LONG).all()


def test_flat_never_trades():
    trades, result = trades_of(Flat(), SMA_SEGMENT)
    assert trades == [] and result.fills == []
    assert (result.equity == 100.0).all()


def test_random_with_certain_trading_follows_the_candle_draws():
    segment = [100.0 + (i % 7) for i in range(60)]
    _, result = trades_of(RandomStrategy(seed=5, trade_prob=1.0), segment)
    draws = candle_uniforms(5, T0 + 60_000 * (PREFIX + np.arange(len(segment) - 1)))
    # trade_prob=1: every candle wants long (u < 1/3), short (u < 2/3) or flat.
    expected = np.where(draws < 1 / 3, Side.LONG, np.where(draws < 2 / 3, Side.SHORT, Side.FLAT))
    np.testing.assert_array_equal(result.positions, expected)


def test_random_is_reproducible_and_seeded():
    times = T0 + 60_000 * np.arange(20_000)
    a, b, c = candle_uniforms(1, times), candle_uniforms(1, times), candle_uniforms(2, times)
    np.testing.assert_array_equal(a, b)
    assert ((a >= 0) & (a < 1)).all()
    assert abs(a.mean() - 0.5) < 0.01 and abs(np.corrcoef(a, c)[0, 1]) < 0.03
    context = MarketContext(np.full(len(times), 100.0), times)
    wanted = (RandomStrategy(seed=1, trade_prob=0.05).decisions(context)[:, 1] != Action.HOLD).mean()
    assert wanted == pytest.approx(0.05 * 2 / 3, abs=0.006)  # when flat, "go flat" is a HOLD


ALL_BASELINES = [
    Flat(), BuyAndHold(), SmaCross(), SmaCross(fast=5, slow=20, short=True), RsiReversion(),
    RsiReversion(period=7, lower=25, upper=75, exit=55, short=True), RandomStrategy(seed=3, trade_prob=0.2),
]


@pytest.mark.parametrize("strategy", ALL_BASELINES, ids=lambda s: s.name)
def test_backtest_form_equals_live_form_on_real_candles(strategy, btc_candles):
    """``prepare`` (whole series known) decides at every candle what ``act`` decides with
    only a live engine's rolling window up to that candle, and ``act_batch`` agrees: no
    decision can depend on a later candle."""
    frame = btc_candles.iloc[:2500]
    context = MarketContext.from_candles(frame)
    rng = np.random.default_rng(0)
    obs = np.zeros((len(frame), 305), dtype=np.float32)
    obs[:, POSITION_INDEX] = rng.choice([-1.0, 0.0, 1.0], size=len(frame))
    decide = strategy.prepare(context)
    backtest = np.array([decide(t, obs[t]) for t in range(len(frame))])
    live = np.array([strategy.act(obs[t], context.window(t, strategy.history)) for t in range(len(frame))])
    np.testing.assert_array_equal(backtest, live)
    np.testing.assert_array_equal(strategy.act_batch(obs, context, np.arange(len(frame))), backtest)
    if strategy.name not in ("flat", "buy_and_hold"):
        assert len(set(backtest.tolist())) >= 3, "the rule never fired on real data"


def test_decisions_ignore_future_candles(btc_candles):
    frame = btc_candles.iloc[:1500]
    context = MarketContext.from_candles(frame)
    changed = MarketContext(context.closes.copy(), context.open_time_ms)
    changed.closes[1000:] *= 1.5
    for strategy in ALL_BASELINES:
        np.testing.assert_array_equal(strategy.decisions(context)[:1000], strategy.decisions(changed)[:1000])
