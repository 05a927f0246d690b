"""Env speed: CryptoTradingEnv steps/s vs gym-anytrading ``stocks-v0``, and feature time.

Both envs step through the same 100k one-minute candles with the same pre-drawn random
actions (window 20), so the ratio measures env overhead alone. Run:
``python benchmarks/bench_env.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from benchmarks.common import best_of, real_candles
from env.crypto_trading_env import CryptoTradingEnv
from env.features import compute_features

N_CANDLES = 100_000
WINDOW = 20


def run_episode(env, actions: np.ndarray) -> int:
    env.reset(seed=0)
    steps = 0
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        steps += 1
        if terminated or truncated:
            env.reset()
    return steps


def main() -> None:
    candles = real_candles(N_CANDLES)
    feature_seconds = best_of(5, lambda: compute_features(candles))
    print(f"features: {N_CANDLES:,} candles in {feature_seconds * 1000:.0f} ms "
          f"({N_CANDLES / feature_seconds / 1e6:.2f} M candles/s)")

    rng = np.random.default_rng(0)
    shadow_env = CryptoTradingEnv(candles, lookback_window=WINDOW, reward_weights=None)
    n_steps = shadow_env.last_step - shadow_env.first_step
    shadow_actions = rng.integers(0, 4, n_steps)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from gym_anytrading.envs import StocksEnv

        frame = pd.DataFrame({"Open": candles["open"], "High": candles["high"], "Low": candles["low"],
                              "Close": candles["close"], "Volume": candles["volume"]})
        baseline_env = StocksEnv(frame, window_size=WINDOW, frame_bound=(WINDOW, len(frame)))
    baseline_actions = rng.integers(0, 2, n_steps)

    ours = best_of(3, lambda: run_episode(shadow_env, shadow_actions))
    theirs = best_of(3, lambda: run_episode(baseline_env, baseline_actions))
    print(f"CryptoTradingEnv:        {n_steps / ours:10,.0f} steps/s ({n_steps:,} steps, random actions)")
    print(f"gym-anytrading stocks-v0: {n_steps / theirs:10,.0f} steps/s (same candles, window {WINDOW})")
    print(f"ratio: {theirs / ours:.2f}x gym-anytrading")


if __name__ == "__main__":
    main()
