"""Backtest throughput and decision latency of the fast PPO path, against the seed's loop.

Baseline (named in the issue): the seed README's backtest snippet, ``model.predict(obs,
deterministic=True)`` + ``env.step(action)`` until the episode ends, on the same env and
candles. Candidate: ``trainer.evaluation.backtest.run_backtest`` with ``PPOStrategy`` (numpy actor).

Both run over the bundled 30,240 real BTCUSDT 1m candles, 30,020 decisions (the env's
blow-up stop is moved to a 100% loss, ``max_loss=1.0``, so a losing model still runs the
whole series), one torch thread, best of ``--repeat`` runs. Latency is one ``act(obs)`` call on real observations,
``time.perf_counter_ns`` around each call. Run from the repository root:

    python -m benchmarks.bench_backtest [--repeat 3] [--train-steps 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import SAMPLE, best_of
from config.settings import EnvSettings, RewardSettings
from env.candles import load_candles
from env.crypto_trading_env import CryptoTradingEnv
from strategies.baselines import SmaCross
from strategies.model_metadata import ModelMetadata
from strategies.ppo import PPOStrategy
from trainer.evaluation.backtest import make_env, run_backtest
from trainer.training.fold_trainer import PPOTrainer


def seed_snippet(model, env: CryptoTradingEnv) -> tuple[list[int], float]:
    """The seed README's backtest loop, verbatim apart from collecting the actions."""
    obs, info = env.reset()
    done, actions = False, []
    while not done:
        action, _states = model.predict(obs, deterministic=True)
        obs, _reward, terminated, truncated, info = env.step(action)
        actions.append(int(action))
        done = terminated or truncated
    return actions, info["total_pnl"]


def latency_us(fn, observations: np.ndarray) -> tuple[float, float]:
    times = np.empty(len(observations))
    for i, obs in enumerate(observations):
        start = time.perf_counter_ns()
        fn(obs)
        times[i] = time.perf_counter_ns() - start
    return float(np.percentile(times, 50) / 1e3), float(np.percentile(times, 99) / 1e3)


def default_model(path: Path, candles) -> Path:
    """SB3's default ``PPO("MlpPolicy", env)``, untrained (seed 0), saved with metadata."""
    from stable_baselines3 import PPO

    settings = EnvSettings()
    model = PPO("MlpPolicy", CryptoTradingEnv.from_settings(candles.iloc[:1000], settings), seed=0, device="cpu")
    model.save(path)
    ModelMetadata.for_current_code(
        lookback_window=settings.lookback_window, env=settings.model_dump(), symbol="BTCUSDT", timeframe="1m",
        data_range={}, hyperparameters={}, seed=0,
    ).save_beside(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=20_000, help="timesteps of the trained model")
    args = parser.parse_args()
    torch.set_num_threads(1)
    candles = load_candles(SAMPLE)
    settings = EnvSettings(reward=RewardSettings(max_loss=1.0))
    tmp = Path(tempfile.mkdtemp(prefix="bench_backtest_"))
    models = {
        "default MlpPolicy, untrained": default_model(tmp / "default.zip", candles),
        f"trained {args.train_steps:,} steps": PPOTrainer(args.train_steps)(
            candles.iloc[:15_000].reset_index(drop=True), seed=0, model_path=tmp / "trained.zip",
            env_settings=settings, extra={}),
    }
    print(f"{len(candles):,} candles ({SAMPLE.name}), torch threads {torch.get_num_threads()}, "
          f"best of {args.repeat}\n")
    header = (f"{'model':<30} {'decisions':>9} {'seed snippet c/s':>17} {'backtest c/s':>13} {'speed-up':>9} "
              f"{'delegated':>10} {'act p50/p99 us':>15} {'predict p50/p99 us':>19}")
    print(header)
    print("-" * len(header))
    for label, path in models.items():
        strategy = PPOStrategy.load(path, lookback_window=settings.lookback_window)
        snippet_env = CryptoTradingEnv.from_settings(candles, settings)
        env = make_env(candles, settings)
        snippet_actions, snippet_pnl = seed_snippet(strategy.model, snippet_env)
        result = run_backtest(strategy, env)
        assert result.actions.tolist() == snippet_actions and result.total_pnl == snippet_pnl, "paths disagree"
        t_snippet = best_of(args.repeat, partial(seed_snippet, strategy.model, snippet_env))
        strategy.delegated = 0
        t_fast = best_of(args.repeat, partial(run_backtest, strategy, env))
        n = len(snippet_actions)
        observations = _observations(env, result.actions)
        act_p50, act_p99 = latency_us(strategy.act, observations)
        pred_p50, pred_p99 = latency_us(strategy.predict, observations[:5000])
        print(f"{label:<30} {n:>9,} {n / t_snippet:>17,.0f} {n / t_fast:>13,.0f} {t_snippet / t_fast:>8.1f}x "
              f"{strategy.delegated / (n * args.repeat):>9.3%} {act_p50:>7.1f}/{act_p99:<7.1f} "
              f"{pred_p50:>9.1f}/{pred_p99:<9.1f}")
    steps = len(run_backtest(SmaCross(), env).actions)
    t_sma = best_of(args.repeat, lambda: run_backtest(SmaCross(), env))
    print(f"\nbaseline sma:fast=10,slow=50 through the same backtester: {steps / t_sma:,.0f} candles/s")


def _observations(env: CryptoTradingEnv, actions: np.ndarray) -> np.ndarray:
    """The observations the backtest saw (replayed with its actions)."""
    obs, _ = env.reset()
    seen = [obs]
    for action in actions[:-1]:
        obs, *_ = env.step(int(action))
        seen.append(obs)
    return np.array(seen)


if __name__ == "__main__":
    main()
