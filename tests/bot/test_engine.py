"""The live engine decides exactly what the backtest decides: same actions, fills, equity."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.engine import ServingStrategy, SymbolEngine
from config.settings import EnvSettings, RiskSettings
from env.types import Candle
from strategies.ppo import PPOStrategy
from strategies.specs import build_strategy
from tests.conftest import PREFIX
from trainer.evaluation.backtest import BacktestResult, make_env, run_backtest

DAY_MS = 86_400_000


def candles_of(frame: pd.DataFrame, symbol: str = "BTCUSDT") -> list[Candle]:
    return [Candle(symbol, "1m", int(r.open_time_ms), r.open, r.high, r.low, r.close, r.volume)
            for r in frame.itertuples(index=False)]


def run_engine(engine: SymbolEngine, candles: list[Candle]) -> list:
    outputs = [engine.on_candle(c, decided_ms=c.open_time_ms + 60_000) for c in candles]
    return [o for o in outputs if o.record is not None]


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
    engine = SymbolEngine("BTCUSDT", "1m", env_settings, risk, ServingStrategy(strategy, spec))
    outputs = [engine.on_candle(c, decided_ms=0) for c in candles_of(frame[:-1])]
    records = [o.record for o in outputs if o.record is not None]
    events = [e for o in outputs for e in o.risk_events]
    assert len(records) == len(frame) - 1 - PREFIX
    assert len(result.trades) > 0 and any(e.kind == "daily_loss" for e in events)
    assert_same_as_backtest(records, events, result)
    if spec.startswith("ppo"):
        assert_the_model_trades_as_trained(strategy, result)


def assert_the_model_trades_as_trained(strategy: PPOStrategy, result: BacktestResult) -> None:
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


def test_warm_restore_and_continue_equals_an_uninterrupted_run(decisive_ppo_model: Path,
                                                               btc_candles: pd.DataFrame) -> None:
    """A restart: a new engine warmed with the stored candles and restored to the ledger's
    account decides the rest exactly like the engine that never stopped."""
    frame = btc_candles.iloc[:1500].reset_index(drop=True)
    candles = candles_of(frame)
    settings, risk = EnvSettings(), RiskSettings()
    strategy = build_strategy(f"ppo:{decisive_ppo_model}", lookback_window=20)
    straight = SymbolEngine("BTCUSDT", "1m", settings, risk, ServingStrategy(strategy, "ppo"))
    expected = [o.record for o in (straight.on_candle(c, decided_ms=0) for c in candles)]

    first = SymbolEngine("BTCUSDT", "1m", settings, risk, ServingStrategy(strategy, "ppo"))
    for c in candles[:900]:
        first.on_candle(c, decided_ms=0)
    second = SymbolEngine("BTCUSDT", "1m", settings, risk, ServingStrategy(strategy, "ppo"))
    second.warm(frame.iloc[:900])
    second.restore(first.portfolio.snapshot(), first.guard.state)
    resumed = [second.on_candle(c, decided_ms=0).record for c in candles[900:]]
    assert [(r.action, r.fills, r.equity, r.obs_hash) for r in resumed] == [
        (r.action, r.fills, r.equity, r.obs_hash) for r in expected[900:]]


def test_no_decision_during_warm_up_and_first_decision_at_the_env_first_step(btc_candles: pd.DataFrame) -> None:
    frame = btc_candles.iloc[:260].reset_index(drop=True)
    engine = SymbolEngine("BTCUSDT", "1m", EnvSettings(), RiskSettings(),
                          ServingStrategy(build_strategy("flat"), "flat"))
    outputs = [engine.on_candle(c, decided_ms=0) for c in candles_of(frame)]
    decided = [i for i, o in enumerate(outputs) if o.record is not None]
    assert decided[0] == make_env(frame, EnvSettings()).first_step == PREFIX
    assert decided == list(range(PREFIX, 260))


def test_swapping_the_strategy_takes_effect_at_the_next_candle(btc_candles: pd.DataFrame) -> None:
    candles = candles_of(btc_candles.iloc[:300])
    engine = SymbolEngine("BTCUSDT", "1m", EnvSettings(), RiskSettings(),
                          ServingStrategy(build_strategy("flat"), "flat"))
    for c in candles[:250]:
        engine.on_candle(c, decided_ms=0)
    engine.serve(ServingStrategy(build_strategy("buy_and_hold"), "ppo", model_version="v2"))
    record = engine.on_candle(candles[250], decided_ms=0).record
    assert (record.strategy, record.model_version, record.action) == ("ppo", "v2", 1)
    assert engine.portfolio.side == 1 and np.isfinite(record.latency_ms)
