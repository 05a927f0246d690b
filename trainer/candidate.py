"""Train a retraining candidate: fresh, or continued from the promoted model (warm start).

:func:`train_candidate` has the call shape of ``trainer.fit.fit`` (the shared training
routine being written on the ``tune`` branch); once that lands, its body becomes one
call: ``return fit(train, None, settings, out_dir, seed=seed, symbol=symbol,
timeframe=timeframe, warm_start=warm_start, model_name=MODEL_NAME).model_path``. Until
then it trains as :class:`trainer.walk_forward.PPOTrainer` does (the ``[train]``
hyperparameters, random-start ``CryptoTradingEnv`` episodes, one process), plus what a
retrain needs and ``PPOTrainer`` lacks: several markets for a shared model (env ``i``
trades frame ``i % len(train)``) and continuing a saved model.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pandas as pd

from config.settings import Settings

MODEL_NAME = "candidate.zip"


class CandidateTrainer(Protocol):
    """Trains on ``train`` (each frame starts with its warm-up candles) and returns the
    model zip, with its ``.meta.json`` beside it, inside ``out_dir``."""

    def __call__(self, train: Sequence[pd.DataFrame], settings: Settings, out_dir: Path, *, seed: int, symbol: str,
                 timeframe: str, warm_start: Path | None) -> Path: ...


def train_candidate(train: Sequence[pd.DataFrame], settings: Settings, out_dir: Path, *, seed: int, symbol: str,
                    timeframe: str, warm_start: Path | None) -> Path:
    """PPO for ``settings.train.total_timesteps`` steps on ``train``; with ``warm_start``,
    that model (its metadata checked first) continues with its own hyperparameters."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv

    from env.crypto_trading_env import CryptoTradingEnv
    from strategies.model_metadata import ModelMetadata
    from trainer.model_io import load_ppo, save_with_metadata

    args, env_settings = settings.train, settings.env
    torch.set_num_threads(args.torch_threads)
    set_random_seed(seed)
    env = DummyVecEnv([
        functools.partial(CryptoTradingEnv.from_settings, train[i % len(train)], env_settings, random_start=True,
                          episode_length=args.episode_length)
        for i in range(args.n_envs)
    ])
    if warm_start is None:
        # A small budget still gets a few updates: the rollout never exceeds it.
        n_steps = max(8, min(args.n_steps, args.total_timesteps // args.n_envs))
        model = PPO("MlpPolicy", env, learning_rate=args.learning_rate, n_steps=n_steps,
                    batch_size=max(2, min(args.batch_size, n_steps * args.n_envs)), n_epochs=args.n_epochs,
                    gamma=args.gamma, seed=seed, device="cpu", verbose=0)
    else:
        model = load_ppo(warm_start, lookback_window=env_settings.lookback_window, env=env)
        model.set_random_seed(seed)
    model.learn(total_timesteps=args.total_timesteps, reset_num_timesteps=warm_start is None)
    hyperparameters = {
        "algorithm": "PPO", "policy": "MlpPolicy", "learning_rate": float(model.learning_rate),
        "n_steps": model.n_steps, "batch_size": model.batch_size, "n_epochs": model.n_epochs, "gamma": model.gamma,
        "n_envs": args.n_envs, "episode_length": args.episode_length, "total_timesteps": args.total_timesteps,
    }
    first = min(int(frame["open_time_ms"].iloc[0]) for frame in train)
    last = max(int(frame["open_time_ms"].iloc[-1]) for frame in train)
    return save_with_metadata(model, out_dir / MODEL_NAME, lambda num_timesteps: ModelMetadata.for_current_code(
        lookback_window=env_settings.lookback_window, env=env_settings.model_dump(mode="json"), symbol=symbol,
        timeframe=timeframe, data_range={"start_ms": first, "end_ms": last, "n_candles": sum(map(len, train))},
        hyperparameters=hyperparameters, seed=seed, num_timesteps=num_timesteps,
        extra={"trainer": "trainer.candidate.train_candidate",
               "warm_start": str(warm_start) if warm_start else None},
    ))
