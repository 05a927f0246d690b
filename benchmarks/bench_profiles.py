"""Training wall time of the default profile vs the seed profile, same timesteps, same run.

Each profile trains PPO through the project's trainer (:class:`trainer.training.fold_trainer.PPOTrainer`,
so :func:`trainer.training.fit.fit`) on the first 10 days of the bundled BTCUSDT candles, one
torch thread, runs interleaved (seed, default, seed, default, ...) so that a busy core slows
both alike; the fastest run of each counts. Target: ratio default / seed <= 1.0 (the default
profile makes ~8x more PPO updates, on bigger minibatches, and its net reward is cheaper).

    python -m benchmarks.bench_profiles [--timesteps 60000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import real_candles
from config.settings import load_settings
from trainer.training.fold_trainer import PPOTrainer

PROFILES = ("seed", "default")


def train_seconds(profile: str, timesteps: int, candles) -> float:
    settings = load_settings(None, profile=profile)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        PPOTrainer(timesteps, settings.train, symbol="BTCUSDT")(candles, seed=0, model_path=Path(folder) / "m.zip",
                                                                 env_settings=settings.env, extra={})
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    candles = real_candles(14_400)
    print(f"PPO through the trainer, {args.timesteps:,} timesteps, 14,400 real 1m candles, 1 torch thread, "
          f"best of {args.repeats} interleaved runs")
    times: dict[str, list[float]] = {p: [] for p in PROFILES}
    for _ in range(args.repeats):
        for profile in PROFILES:
            times[profile].append(train_seconds(profile, args.timesteps, candles))
    for profile in PROFILES:
        settings = load_settings(None, profile=profile)
        t = settings.train
        print(f"{profile:8s} n_steps {t.n_steps:5d} x {t.n_envs} envs, batch {t.batch_size:4d}, "
              f"{settings.env.reward.mode} reward, {settings.env.action_mode} actions: "
              f"{min(times[profile]):6.1f} s ({args.timesteps / min(times[profile]):,.0f} timesteps/s)")
    print(f"ratio default / seed = {min(times['default']) / min(times['seed']):.2f}  (target <= 1.0)")


if __name__ == "__main__":
    main()
