"""The live engine decides exactly what the backtest decides: same actions, fills, equity,
for each of several accounts sharing one engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.engine import ServingStrategy, SymbolEngine
from config.accounts import DEFAULT_ACCOUNT
from config.settings import EnvSettings, RiskSettings
from env.types import Candle
from strategies.policy import ServedPolicy
from strategies.specs import build_strategy
from tests.bot.engines import one_account_engine
from tests.conftest import PREFIX
from trainer.evaluation.backtest import BacktestResult, make_env, run_backtest

DAY_MS = 86_400_000


def candles_of(frame: pd.DataFrame, symbol: str = "BTCUSDT") -> list[Candle]:
    return [Candle(symbol, "1m", int(r.open_time_ms), r.open, r.high, r.low, r.close, r.volume)
            for r in frame.itertuples(index=False)]


def assert_same_as_backtest(records: list, risk_events: list, result: BacktestResult) -> None:
    assert [r.candle.open_time_ms for r in records] == result.times_ms[:-1].tolist()
    assert [r.action for r in records] == result.actions.tolist()
    assert [f for r in records for f in r.fills] == result.fills  # every fill, every float, exactly
    assert [r.equity for r in records] == result.decision_equity.tolist()
    assert [(e.time_ms, e.kind) for e in risk_events] == [(e.time_ms, e.kind) for e in result.risk_events]


@pytest.mark.parametrize("spec", ["ppo", "ppo:target", "ppo:long_flat", "ppo:target-stride15", "sma:fast=5,slow=20",
                                  "rsi:period=14"])
def test_engine_equals_backtest_on_real_candles(spec: str, decisive_models: Callable[[str], Path],
                                                btc_candles: pd.DataFrame) -> None:
    """Parity for every action mode and a decision stride: the model's own orders, mapped
    by the one money step, then the guard."""
    frame = btc_candles.iloc[:3000].reset_index(drop=True)
    env_settings = EnvSettings(slippage_bps=2.0)
    risk = RiskSettings(max_drawdown=0.03, daily_loss_limit=0.01)  # tight, so the guard acts
    setup = "trade" if spec == "ppo" else spec.removeprefix("ppo:")
    strategy = build_strategy(f"ppo:{decisive_models(setup)}" if spec.startswith("ppo") else spec, lookback_window=20)
    result = run_backtest(strategy, make_env(frame, env_settings), risk=risk)
    engine = one_account_engine("BTCUSDT", env_settings, risk, ServingStrategy(strategy, spec))
    outputs = [engine.on_candle(c, decided_ms=0) for c in candles_of(frame[:-1])]
    records = [r for o in outputs for r in o.records]
    events = [e for r in records for e in r.risk_events]
    assert len(records) == len(frame) - 1 - PREFIX
    assert len(result.trades) > 0 and any(e.kind == "daily_loss" for e in events)
    assert_same_as_backtest(records, events, result)
    if spec.startswith("ppo"):
        assert_the_model_trades_as_trained(strategy, result)


def assert_the_model_trades_as_trained(strategy: ServedPolicy, result: BacktestResult) -> None:
    """Its action mode's positions, and trades only on its decision candles (or when the guard acts)."""
    if strategy.metadata.action_mode == "long_flat":
        assert set(result.positions.tolist()) == {0, 1}
    else:
        assert set(result.positions.tolist()) == {-1, 0, 1}
    guarded = {e.time_ms for e in result.risk_events}
    traded = {int(t) for t, a in zip(result.times_ms, result.actions, strict=False) if a != 0}
    assert all(strategy.cadence.decides(t) or t in guarded for t in traded)
    if strategy.cadence.stride > 1:
        assert sum(strategy.cadence.decides(int(t)) for t in result.times_ms) < len(result.times_ms) / 10


def test_each_account_serves_its_model_in_its_own_action_mode_and_stride(decisive_models: Callable[[str], Path],
                                                                         btc_candles: pd.DataFrame) -> None:
    """A target model deciding every 15 candles, a long_flat model and the seed's trade model
    as three accounts of one engine: each trades as its model was trained, its backtest bit
    for bit."""
    frame = btc_candles.iloc[:3000].reset_index(drop=True)
    env_settings, risk = EnvSettings(slippage_bps=2.0), RiskSettings(max_drawdown=0.03, daily_loss_limit=0.01)
    strategies = {setup: build_strategy(f"ppo:{decisive_models(setup)}", lookback_window=20)
                  for setup in ("target-stride15", "long_flat", "trade")}
    engine = SymbolEngine("BTCUSDT", "1m", 20)
    for setup, strategy in strategies.items():
        engine.add_account(setup, env_settings, risk, ServingStrategy(strategy, "ppo"))
    outputs = [engine.on_candle(c, decided_ms=0) for c in candles_of(frame[:-1])]
    for setup, strategy in strategies.items():
        result = run_backtest(strategy, make_env(frame, env_settings), risk=risk)
        records = [r for o in outputs for r in o.records if r.account == setup]
        assert_same_as_backtest(records, [e for r in records for e in r.risk_events], result)
        assert_the_model_trades_as_trained(strategy, result)
    assert strategies["target-stride15"].cadence.stride == 15 and strategies["trade"].cadence.stride == 1


def test_warm_restore_and_continue_equals_an_uninterrupted_run(decisive_ppo_model: Path,
                                                               btc_candles: pd.DataFrame) -> None:
    """A restart: a new engine warmed with the stored candles and restored to the ledger's
    account decides the rest exactly like the engine that never stopped."""
    frame = btc_candles.iloc[:1500].reset_index(drop=True)
    candles = candles_of(frame)
    settings, risk = EnvSettings(), RiskSettings()
    strategy = build_strategy(f"ppo:{decisive_ppo_model}", lookback_window=20)
    straight = one_account_engine("BTCUSDT", settings, risk, ServingStrategy(strategy, "ppo"))
    expected = [straight.on_candle(c, decided_ms=0).records for c in candles]

    first = one_account_engine("BTCUSDT", settings, risk, ServingStrategy(strategy, "ppo"))
    for c in candles[:900]:
        first.on_candle(c, decided_ms=0)
    second = one_account_engine("BTCUSDT", settings, risk, ServingStrategy(strategy, "ppo"))
    second.warm(frame.iloc[:900])
    stopped = first.accounts[DEFAULT_ACCOUNT]
    second.accounts[DEFAULT_ACCOUNT].restore(stopped.portfolio.snapshot(), stopped.guard.state)
    resumed = [second.on_candle(c, decided_ms=0).records[0] for c in candles[900:]]
    assert [(r.action, r.fills, r.equity, r.obs_hash) for r in resumed] == [
        (r.action, r.fills, r.equity, r.obs_hash) for (r,) in expected[900:]]


def test_no_decision_during_warm_up_and_first_decision_at_the_env_first_step(btc_candles: pd.DataFrame) -> None:
    frame = btc_candles.iloc[:260].reset_index(drop=True)
    engine = one_account_engine("BTCUSDT", EnvSettings(), RiskSettings(),
                                ServingStrategy(build_strategy("flat"), "flat"))
    outputs = [engine.on_candle(c, decided_ms=0) for c in candles_of(frame)]
    decided = [i for i, o in enumerate(outputs) if o.records]
    assert decided[0] == make_env(frame, EnvSettings()).first_step == PREFIX
    assert decided == list(range(PREFIX, 260))


def test_swapping_the_strategy_takes_effect_at_the_next_candle(btc_candles: pd.DataFrame) -> None:
    candles = candles_of(btc_candles.iloc[:300])
    engine = one_account_engine("BTCUSDT", EnvSettings(), RiskSettings(),
                                ServingStrategy(build_strategy("flat"), "flat"))
    for c in candles[:250]:
        engine.on_candle(c, decided_ms=0)
    engine.serve(DEFAULT_ACCOUNT, ServingStrategy(build_strategy("buy_and_hold"), "ppo", model_version="v2"))
    (record,) = engine.on_candle(candles[250], decided_ms=0).records
    assert (record.account, record.strategy, record.model_version, record.action) == (DEFAULT_ACCOUNT, "ppo", "v2", 1)
    assert engine.accounts[DEFAULT_ACCOUNT].portfolio.side == 1 and np.isfinite(record.latency_ms)


ACCOUNTS = {  # name: (strategy spec, its money and limits)
    "ppo": ("ppo", EnvSettings(slippage_bps=2.0), RiskSettings(max_drawdown=0.03, daily_loss_limit=0.01)),
    "sma": ("sma:fast=5,slow=20", EnvSettings(initial_balance=250.0, commission=0.001), RiskSettings()),
    "rsi": ("rsi:period=14", EnvSettings(max_position_size=0.5), RiskSettings(max_drawdown=0.0, daily_loss_limit=0.0)),
    "random": ("random:seed=3,trade_prob=0.2", EnvSettings(), RiskSettings(daily_loss_limit=0.005)),
}


def test_accounts_sharing_an_engine_each_equal_their_own_backtest(decisive_ppo_model: Path,
                                                                    btc_candles: pd.DataFrame,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Four accounts (different strategies, money, costs and limits) on one engine: the
    features are computed once per candle, and each account's decisions, fills and equity
    equal the backtest of its strategy with its settings, bit for bit."""
    from bot import engine as engine_module

    frame = btc_candles.iloc[:3000].reset_index(drop=True)
    strategies = {name: build_strategy(f"ppo:{decisive_ppo_model}" if spec == "ppo" else spec, lookback_window=20)
                  for name, (spec, _, _) in ACCOUNTS.items()}
    engine = SymbolEngine("BTCUSDT", "1m", 20)
    for name, (spec, env_settings, risk) in ACCOUNTS.items():
        engine.add_account(name, env_settings, risk, ServingStrategy(strategies[name], spec))
    updates = []
    real_update = engine_module.StreamingFeatures.update
    monkeypatch.setattr(engine_module.StreamingFeatures, "update",
                        lambda self, *candle: updates.append(1) or real_update(self, *candle))
    outputs = [engine.on_candle(c, decided_ms=0) for c in candles_of(frame[:-1])]
    assert len(updates) == len(frame) - 1  # once per candle, not once per account
    for name, (_, env_settings, risk) in ACCOUNTS.items():
        records = [r for o in outputs for r in o.records if r.account == name]
        result = run_backtest(strategies[name], make_env(frame, env_settings), risk=risk)
        assert len(result.trades) > 0, name
        assert_same_as_backtest(records, [e for r in records for e in r.risk_events], result)
        assert {r.initial_balance for r in records} == {env_settings.initial_balance}
    first = next(o for o in outputs if o.records)
    assert [r.account for r in first.records] == list(ACCOUNTS)


def test_an_account_joining_later_starts_with_the_equity_of_another(btc_candles: pd.DataFrame) -> None:
    """A live trial's challenger joins at the next candle with its incumbent's equity at that
    close, and from then on equals the backtest of its strategy started there with that money."""
    frame = btc_candles.iloc[:1500].reset_index(drop=True)
    candles = candles_of(frame)
    incumbent = ServingStrategy(build_strategy("sma:fast=5,slow=20"), "sma")
    engine = one_account_engine("BTCUSDT", EnvSettings(), RiskSettings(), incumbent)
    for c in candles[:1000]:
        engine.on_candle(c, decided_ms=0)
    equity_before = engine.accounts[DEFAULT_ACCOUNT].portfolio.equity  # at close 999
    challenger = build_strategy("random:seed=1,trade_prob=0.2")
    engine.join("trial:v1", EnvSettings(), RiskSettings(), ServingStrategy(challenger, "random"),
                equity_of=DEFAULT_ACCOUNT)
    assert "trial:v1" not in engine.accounts  # it joins at the next candle, not between two
    outputs = [engine.on_candle(c, decided_ms=0) for c in candles[1000:-1]]
    joined = [r for o in outputs for r in o.records if r.account == "trial:v1"]
    incumbent_first = next(r for r in outputs[0].records if r.account == DEFAULT_ACCOUNT)
    start_equity = joined[0].initial_balance
    assert not incumbent_first.fills and incumbent_first.state.side != 0  # holding, no trade
    assert start_equity == incumbent_first.equity != equity_before  # the equity at close 1000, not 999
    result = run_backtest(challenger, make_env(frame, EnvSettings(initial_balance=start_equity)), start_index=1000,
                          risk=RiskSettings())
    assert_same_as_backtest(joined, [e for r in joined for e in r.risk_events], result)
