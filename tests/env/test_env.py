"""CryptoTradingEnv: the gymnasium contract, the seed's API and snippet, and step semantics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from env.candles import CandleDataError, candles_to_seed_csv
from env.crypto_trading_env import CryptoTradingEnv
from env.features import compute_features, warmup_prefix
from env.reward import RewardWeights
from env.types import Action
from tests.conftest import PREFIX, REPO, make_candles


@pytest.fixture()
def real_env(btc_candles: pd.DataFrame) -> CryptoTradingEnv:
    return CryptoTradingEnv(btc_candles.iloc[:2000])


def test_gymnasium_env_checker_passes(real_env: CryptoTradingEnv) -> None:
    check_env(real_env, skip_render_check=True)


def test_seed_constructor_defaults_and_spaces(real_env: CryptoTradingEnv) -> None:
    cfg = real_env.portfolio_config
    assert (cfg.initial_balance, cfg.commission, cfg.max_position_size) == (100.0, 0.0004, 1.0)
    assert (real_env.lookback_window, real_env.reward_scaling) == (20, 1e-4)
    assert real_env.action_space.n == 4
    assert real_env.observation_space.shape == (15 * 20 + 5,)
    assert real_env.observation_space.dtype == np.float32


def test_reset_with_seed_is_deterministic(btc_candles: pd.DataFrame) -> None:
    def rollout(seed: int) -> list[np.ndarray]:
        env = CryptoTradingEnv(btc_candles.iloc[:3000], random_start=True, episode_length=50)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        env.action_space.seed(seed)
        for _ in range(50):
            obs, *_ = env.step(env.action_space.sample())
            out.append(obs)
        return out

    a, b, c = rollout(3), rollout(3), rollout(4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_observation_is_the_feature_window_plus_portfolio(btc_candles: pd.DataFrame) -> None:
    candles = btc_candles.iloc[:1000]
    env = CryptoTradingEnv(candles, lookback_window=7)
    obs, info = env.reset()
    t = warmup_prefix(7)
    features = compute_features(candles).astype(np.float32)
    np.testing.assert_array_equal(obs[:-5], features[t - 6 : t + 1].ravel())
    np.testing.assert_array_equal(obs[-5:], [0, 0, 0, 0, 0])
    assert info["timestamp_ms"] == candles["open_time_ms"].iloc[t]
    obs, *_ = env.step(Action.BUY)
    np.testing.assert_array_equal(obs[:-5], features[t - 5 : t + 2].ravel())
    assert obs[-4] == 1.0  # position: long


def test_step_fills_at_this_close_and_rewards_the_move(btc_candles: pd.DataFrame) -> None:
    env = CryptoTradingEnv(btc_candles.iloc[:1000], commission=0.0)
    env.reset()
    t = env.current_index
    close_t, close_next = btc_candles["close"].iloc[t], btc_candles["close"].iloc[t + 1]
    _, reward, terminated, truncated, info = env.step(Action.BUY)
    assert env.portfolio.entry_price == close_t
    move = 100.0 / close_t * (close_next - close_t)  # qty x price change
    assert info["unrealized_pnl"] == pytest.approx(move)
    expected = 1e-4 * (0.1 * move * 100 + (0.01 * move * 100 if move < 0 else 0.0))  # bps of the 100 balance
    assert reward == pytest.approx(expected)
    assert not terminated and not truncated


def test_closing_a_trade_pays_the_realized_component() -> None:
    candles = make_candles([100.0] * (PREFIX + 1) + [110.0, 110.0, 110.0])
    weights = RewardWeights(unrealized=0.0, losing_hold=0.0, inactivity=0.0)
    env = CryptoTradingEnv(candles, commission=0.001, reward_weights=weights)
    env.reset()
    env.step(Action.BUY)  # at 100, the last flat candle
    _, reward, *_ = env.step(Action.CLOSE)  # at 110
    assert reward == pytest.approx(1e-4 * 9.79 * 100)  # net 9.79 USDT = 979 bps of 100


def test_inactivity_penalty_after_the_tolerated_flat_steps() -> None:
    candles = make_candles(np.full(PREFIX + 21, 100.0))
    env = CryptoTradingEnv(candles, reward_weights=RewardWeights(inactivity_steps=5, inactivity=2.0))
    env.reset()
    rewards = [env.step(Action.HOLD)[1] for _ in range(8)]
    assert rewards[:5] == [0.0] * 5
    assert rewards[5:] == [pytest.approx(-2e-4)] * 3


def test_blow_up_terminates_with_the_big_penalty() -> None:
    closes = [100.0] * (PREFIX + 1) + [90.0, 60.0, 45.0, 40.0]
    env = CryptoTradingEnv(make_candles(closes), commission=0.0)
    env.reset()
    env.step(Action.BUY)  # long at 100
    _, _, term1, _, _ = env.step(Action.HOLD)  # 60: equity 60, still alive
    _, r2, term2, trunc2, info = env.step(Action.HOLD)  # 45: equity 45 < 50
    assert not term1 and term2 and not trunc2
    assert info["equity"] == pytest.approx(45.0)
    assert r2 < -1.0  # the 10,000 bps blow-up charge (-1.0) on top of the loss


def test_episode_truncates_at_the_end_of_the_data(btc_candles: pd.DataFrame) -> None:
    env = CryptoTradingEnv(btc_candles.iloc[:400])
    env.reset()
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, info = env.step(Action.HOLD)
        steps += 1
        assert not terminated
    assert steps == 400 - 1 - env.first_step
    assert info["step"] == 399


def test_info_has_the_seed_keys_and_pnl_identity(real_env: CryptoTradingEnv) -> None:
    real_env.reset()
    rng = np.random.default_rng(1)
    for a in rng.integers(0, 4, 500):
        *_, info = real_env.step(a)
    for key in ("balance", "total_pnl", "win_rate", "total_trades"):
        assert key in info
    assert info["total_pnl"] == pytest.approx(info["realized_pnl"] + info["unrealized_pnl"] - info["fees_paid"])
    assert info["equity"] == pytest.approx(info["balance"] + info["unrealized_pnl"])


def test_too_short_data_names_the_requirement(btc_candles: pd.DataFrame) -> None:
    with pytest.raises(CandleDataError, match=r"100 candles is too short: need at least 221"):
        CryptoTradingEnv(btc_candles.iloc[:100])


def test_bad_candles_in_the_frame_are_reported(btc_candles: pd.DataFrame) -> None:
    df = btc_candles.iloc[:500][["timestamp", "open", "high", "low", "close", "volume"]].copy()
    df.loc[42, "close"] = np.nan
    with pytest.raises(CandleDataError, match=r"CryptoTradingEnv\(df\), line 44: NaN"):
        CryptoTradingEnv(df)


def test_seed_backtest_snippet_runs_unchanged(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    """The seed README's backtest code, with only the import path changed, against a saved PPO model."""
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    candles_to_seed_csv(btc_candles.iloc[:1500], tmp_path / "data" / "test_data.csv")
    model = PPO("MlpPolicy", CryptoTradingEnv(btc_candles.iloc[:1500]), n_steps=64, batch_size=32, seed=0)
    model.save(tmp_path / "models" / "ppo_crypto_model" / "ppo_crypto_model_final.zip")
    snippet = (Path(__file__).parent / "seed_backtest_snippet.py").read_text()
    result = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["Final balance", "Total PnL", "Win rate", "Total trades"]


def test_self_test_module_prints_success() -> None:
    result = subprocess.run([sys.executable, "-m", "env.crypto_trading_env"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CryptoTradingEnv test completed successfully!" in result.stdout


def test_info_is_the_portfolios_read_outs_with_a_zero_win_rate_before_any_trade(real_env: CryptoTradingEnv) -> None:
    _, info = real_env.reset()
    assert (info["win_rate"], info["total_trades"]) == (0.0, 0)
    for action in (0, 1, 0, 0, 3, 2, 0):
        *_, info = real_env.step(action)
        p = real_env.portfolio
        assert (info["equity"], info["total_pnl"], info["unrealized_pnl"], info["win_rate"]) == (
            p.equity, p.total_pnl, p.unrealized_pnl, p.win_rate)
        assert info["equity"] == p.cash + p.side * p.qty * (p.last_price - p.entry_price)
    assert info["total_trades"] == 1 and info["position"] == -1 and real_env.last_execution.action == 0


def test_target_mode_actions_ask_for_positions(btc_candles: pd.DataFrame) -> None:
    env = CryptoTradingEnv(btc_candles.iloc[:600], action_mode="target")
    assert env.action_space.n == 3
    env.reset()
    env.step(2)  # long
    assert (env.portfolio.side, env.last_execution.action) == (1, Action.BUY)
    env.step(2)  # still long: nothing to do
    assert env.last_execution == (Action.HOLD, (), ())
    env.step(0)  # short: a reversal, the ledger's SELL with a close and an open
    assert (env.portfolio.side, env.last_execution.action, len(env.last_execution.fills)) == (-1, Action.SELL, 2)
    env.step(1)
    assert (env.portfolio.side, env.last_execution.action) == (0, Action.CLOSE)
    with pytest.raises(ValueError, match=r"target action mode has actions 0\.\.2"):
        env.step(3)


def test_long_flat_mode_never_holds_a_short(btc_candles: pd.DataFrame) -> None:
    env = CryptoTradingEnv(btc_candles.iloc[:1000], action_mode="long_flat")
    assert env.action_space.n == 2
    env.reset()
    sides = [env.step(a)[4]["position"] for a in np.random.default_rng(0).integers(0, 2, 500)]
    assert set(sides) == {0, 1} and env.portfolio.n_trades > 50


def test_the_net_reward_adds_up_to_100_times_the_log_return(btc_candles: pd.DataFrame) -> None:
    env = CryptoTradingEnv(btc_candles.iloc[:1500], reward_mode="net", slippage_bps=1.0)
    env.reset()
    rewards = []
    for action in np.random.default_rng(3).integers(0, 4, 2000):
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        if terminated or truncated:
            break
    assert info["fees_paid"] > 1.0  # the fees are in it
    assert sum(rewards) == pytest.approx(100 * np.log(info["equity"] / 100.0), abs=1e-9)


def test_a_stride_holds_between_decisions_and_moves_money_as_candle_by_candle_orders(
        btc_candles: pd.DataFrame) -> None:
    """One step of a stride-15 env = the decision's order, then HOLD on each candle up to the
    next decision candle: the same equity, observation and summed reward as a one-candle env
    driven with those orders (what a backtest does)."""
    frame = btc_candles.iloc[:2000]
    strided = CryptoTradingEnv(frame, action_mode="target", decision_stride=15, reward_mode="net")
    candle_by_candle = CryptoTradingEnv(frame, reward_mode="net")
    obs, info = strided.reset()
    start = strided.current_index
    candle_by_candle.reset(options={"start_index": start})
    assert start > strided.first_step and strided.cadence.decides(info["timestamp_ms"])
    steps = 0
    for action in np.random.default_rng(5).integers(0, 3, 1000):
        obs, reward, terminated, truncated, info = strided.step(action)
        _, total, *_ = candle_by_candle.step_candle(strided.action_mode.orders[action])
        while candle_by_candle.current_index < strided.current_index:
            other, held, *_, other_info = candle_by_candle.step_candle(Action.HOLD)
            total += held
        steps += 1
        assert (other_info["equity"], reward) == (info["equity"], total)
        np.testing.assert_array_equal(obs, other)
        assert strided.cadence.decides(info["timestamp_ms"]) or truncated
        if terminated or truncated:
            break
    decision_candles = [t for t in frame["open_time_ms"].iloc[start:-1] if strided.cadence.decides(t)]
    assert truncated and steps == len(decision_candles)
    assert strided.portfolio.n_trades > 20


def test_a_random_start_with_a_stride_is_a_decision_candle(btc_candles: pd.DataFrame) -> None:
    env = CryptoTradingEnv(btc_candles.iloc[:3000], decision_stride=15, random_start=True, episode_length=300)
    for seed in range(5):
        _, info = env.reset(seed=seed)
        assert env.cadence.decides(info["timestamp_ms"])
