"""Convergence diagnostics: a policy that always wants the same thing has converged, one whose
argmax wanders has not, and the trading figures are the backtest's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stable_baselines3 import PPO

from config.settings import EnvSettings
from env.types import Action
from strategies.ppo import PPOStrategy
from tests.conftest import PREFIX
from tests.retrain_models import constant_model
from trainer.evaluation.backtest import make_env, run_backtest
from trainer.training.diagnostics import FLIP_RATE_LIMIT, diagnose


def test_a_constant_policy_has_converged(tmp_path: Path, ppo_model: Path, btc_candles: pd.DataFrame) -> None:
    model = PPO.load(constant_model(ppo_model, Action.BUY, tmp_path / "buy.zip"), device="cpu")
    found = diagnose(model, [btc_candles.iloc[:1500]], EnvSettings())
    assert (found.flip_rate, found.round_trips_per_1000) == (0.0, 0.0)  # long once, held to the end
    assert found.entropy_ratio < 0.01 and found.converged and found.warning() is None
    assert found.decisions == found.candles == 1500 - 1 - PREFIX


def test_a_wandering_policy_has_not_converged_and_its_trading_figures_are_the_backtests(
        decisive_ppo_model: Path, btc_candles: pd.DataFrame) -> None:
    frames = [btc_candles.iloc[:1500], btc_candles.iloc[5000:6500]]
    env = EnvSettings(slippage_bps=1.0)
    found = diagnose(PPO.load(decisive_ppo_model, device="cpu"), frames, env)
    assert found.flip_rate > 3 * FLIP_RATE_LIMIT and not found.converged
    assert "has not converged: its argmax flips on" in (found.warning() or "")
    strategy = PPOStrategy.load(decisive_ppo_model)
    runs = [run_backtest(strategy, make_env(frame.reset_index(drop=True), env)) for frame in frames]
    trades, candles = sum(r.metrics.n_trades for r in runs), sum(r.metrics.n_steps for r in runs)
    fees, gross = (sum(r.metrics.fees_paid for r in runs), sum(r.metrics.total_pnl + r.metrics.fees_paid for r in runs))
    assert found.round_trips_per_1000 == pytest.approx(1000 * trades / candles)
    assert found.fee_share == pytest.approx(fees / abs(gross))
    # confident logits (its head was scaled up) that change their mind: low entropy is not convergence
    assert found.entropy == pytest.approx(found.entropy_ratio * np.log(4)) and found.entropy_ratio < 0.5
