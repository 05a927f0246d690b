"""The backtester is the env: one PnL, and commission/slippage from the settings."""

from __future__ import annotations

import numpy as np
import pytest

from config.settings import EnvSettings
from env.crypto_trading_env import CryptoTradingEnv
from env.types import Side
from strategies.baselines import BuyAndHold, RandomStrategy
from strategies.ppo import PPOStrategy
from tests.conftest import PREFIX
from trainer.data.ranges import RangeError, select_range
from trainer.evaluation.backtest import make_env, run_backtest, run_comparison


def test_ppo_backtest_equals_the_seed_snippet_on_real_candles(decisive_ppo_model, eth_candles):
    """The seed README's loop (``model.predict`` + ``env.step``) and the backtester give
    the same actions, the same equity at every step and the same final ``info`` PnL."""
    strategy = PPOStrategy.load(decisive_ppo_model)
    frame = eth_candles.iloc[:4000]
    result = run_backtest(strategy, make_env(frame, EnvSettings()))

    env = CryptoTradingEnv(frame, initial_balance=100.0)
    obs, info = env.reset()
    actions, equity, done = [], [info["equity"]], False
    while not done:
        action, _ = strategy.model.predict(obs, deterministic=True)
        obs, _, terminated, truncated, info = env.step(action)
        actions.append(int(action))
        equity.append(info["equity"])
        done = terminated or truncated

    assert len(result.trades) > 20, "the comparison needs a model that trades"
    np.testing.assert_array_equal(result.actions, actions)
    np.testing.assert_array_equal(result.equity, equity)
    assert result.total_pnl == info["total_pnl"]
    assert result.metrics.total_pnl == pytest.approx(info["total_pnl"], abs=1e-9)
    assert result.metrics.fees_paid == info["fees_paid"]
    assert result.metrics.n_trades == info["total_trades"]


def test_trade_log_adds_up_to_the_env_pnl(btc_candles):
    result = run_backtest(RandomStrategy(seed=4, trade_prob=0.1), make_env(btc_candles.iloc[:5000], EnvSettings()))
    logged = sum(t.net_pnl for t in result.trades)
    if result.open_position is not None:
        logged += result.open_position.unrealized_pnl - result.open_position.entry_fee
    assert logged == pytest.approx(result.total_pnl, abs=1e-9)
    assert sum(f.fee for f in result.fills) == pytest.approx(result.final_info["fees_paid"], abs=1e-12)
    assert len(result.trades) == result.final_info["total_trades"] > 100


def test_commission_and_slippage_come_from_the_settings(btc_candles):
    settings = EnvSettings(commission=0.001, slippage_bps=5.0)
    result = run_backtest(BuyAndHold(), make_env(btc_candles.iloc[:1000], settings))
    (fill,) = result.fills
    assert fill.price == pytest.approx(fill.market_price * 1.0005)
    assert fill.fee == pytest.approx(0.001 * fill.qty * fill.price)
    assert fill.qty * fill.price == pytest.approx(100.0)  # max_position_size 1.0 of the initial balance
    assert result.equity[-1] == pytest.approx(100.0 - fill.fee + fill.qty * (result.closes[-1] - fill.price))


def test_every_strategy_of_a_comparison_runs_on_the_same_candles(btc_candles):
    results = run_comparison([BuyAndHold(), RandomStrategy()], make_env(btc_candles.iloc[:2000], EnvSettings()), 500)
    np.testing.assert_array_equal(results[0].times_ms, results[1].times_ms)
    assert results[0].times_ms[0] == btc_candles["open_time_ms"].iloc[500]
    assert results[0].positions[0] == Side.LONG


def test_select_range_keeps_every_candle_before_the_first_decision(btc_candles):
    """The history rule: the features of a decision run over the whole series before it,
    as the daemon's run over every candle of its ledger."""
    frame, start = select_range(btc_candles, PREFIX, "2023-03-10", "2023-03-11")
    assert start == 9 * 1440 and frame["timestamp"].iloc[0] == np.datetime64("2023-03-01T00:00")
    assert frame["timestamp"].iloc[start] == np.datetime64("2023-03-10T00:00")
    assert frame["timestamp"].iloc[-1] == np.datetime64("2023-03-10T23:59")  # --to is exclusive
    frame, start = select_range(btc_candles, PREFIX, "2023-03-01T01:00", "2023-03-02")
    assert start == PREFIX and len(frame) == 1440  # too little history before 01:00: decisions begin after warm-up


def test_a_backtest_from_any_time_sees_the_observation_of_the_run_from_the_start(btc_candles):
    """The first decision of a backtest from T sees bit for bit the observation that a run
    over the same series from its first candle saw at T (flat account): features are never
    seeded anew at T - warm-up."""
    seen: dict[int, bytes] = {}

    class Recorder(RandomStrategy):
        def prepare(self, context):
            decide = super().prepare(context)

            def record(t, obs):
                seen.setdefault(int(context.open_time_ms[t]), obs.tobytes())
                return decide(t, obs)
            return record

    series = btc_candles.iloc[:3000]
    run_backtest(Recorder(trade_prob=0.0), make_env(series, EnvSettings()))
    from_start = dict(seen)
    seen.clear()
    frame, start = select_range(series, PREFIX, "2023-03-02T12:00")
    run_backtest(Recorder(trade_prob=0.0), make_env(frame, EnvSettings()), start)
    t_ms = int(frame["open_time_ms"].iloc[start])
    assert seen[t_ms] == from_start[t_ms]


@pytest.mark.parametrize("start, end, message", [
    ("yesterday-ish", None, r"--from 'yesterday-ish' is not a date"),
    (None, "", r"--to '' is not a date"),
    ("10/03/2023", None, r"--from '10/03/2023' is not a date"),
    ("2023-03-10", "2023-03-09", r"--from 2023-03-10 is not before --to 2023-03-09"),
    ("2024-01-01", None, r"no candles in \[2024-01-01, end\); the data covers 2023-03-01 00:00 .. "),
    (None, "2023-03-01T03:00", rf"leaves 0 candle\(s\) to trade: need {PREFIX} candles of warm-up"),
    ("2023-03-21T23:59", None, rf"leaves 1 candle\(s\) to trade: need {PREFIX} candles of warm-up"),
])
def test_select_range_errors_name_the_problem(btc_candles, start, end, message):
    with pytest.raises(RangeError, match=message):
        select_range(btc_candles, PREFIX, start, end)


def test_a_blow_up_ends_the_backtest_where_the_env_terminates(btc_candles):
    settings = EnvSettings(max_position_size=20.0)  # 20x leverage: one bad hour ends it
    result = run_backtest(RandomStrategy(seed=1, trade_prob=0.2), make_env(btc_candles.iloc[:30000], settings))
    assert result.terminated
    assert result.equity[-1] < 50.0 and len(result.actions) < 30000 - PREFIX - 1
    assert len(result.equity) == len(result.actions) + 1 == len(result.times_ms)


def test_the_risk_guard_goes_flat_and_stays_out_after_the_drawdown_stop(btc_candles):
    from config.settings import RiskSettings

    env = make_env(btc_candles.iloc[:3000], EnvSettings())
    unguarded = run_backtest(RandomStrategy(seed=3), env)
    guarded = run_backtest(RandomStrategy(seed=3), env, risk=RiskSettings(max_drawdown=0.01, daily_loss_limit=0))
    (stop,) = [e for e in guarded.risk_events if e.kind == "max_drawdown"]
    after = np.searchsorted(guarded.times_ms, stop.time_ms)
    assert (guarded.positions[after:] == Side.FLAT).all()  # flat from the stop on, for good
    assert (unguarded.positions[after:] != Side.FLAT).any()
    assert guarded.final_info["max_drawdown"] < unguarded.final_info["max_drawdown"]


def test_skill_figures_of_real_backtests(eth_candles):
    """Buy & hold rides the market (net exposure 1, timing only its fee); random trading
    turns the capital over many times; flat has none of it."""
    env = make_env(eth_candles.iloc[:3000], EnvSettings(slippage_bps=1.0))
    hold, random_run = run_comparison([BuyAndHold(), RandomStrategy(seed=1, trade_prob=0.1)], env)
    closes = eth_candles["close"].to_numpy()[PREFIX:3000]
    m = hold.metrics
    assert m.buy_and_hold_return == pytest.approx(closes[-1] / closes[0] - 1)
    assert (m.time_long, m.time_short, m.net_exposure) == (1.0, 0.0, 1.0)
    assert m.timing == pytest.approx(m.total_return - m.buy_and_hold_return)
    assert -2 * m.fees_to_capital < m.timing < 0  # the entry fee and slippage, nothing else
    r = random_run.metrics
    assert r.turnover == pytest.approx(sum(f.qty * f.price for f in random_run.fills) / 100.0)
    assert r.turnover > 10 and r.fees_to_capital == pytest.approx(r.fees_paid / 100.0)
    assert r.time_long + r.time_short == pytest.approx(r.exposure)
