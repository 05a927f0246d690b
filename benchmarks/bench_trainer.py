"""PPO training throughput on CryptoTradingEnv vs on CartPole-v1 (the baseline), same run.

Both get identical PPO settings (MlpPolicy, n_steps, batch size, epochs, n_envs, one torch
thread, CPU), so the ratio ``crypto / cartpole`` is the cost of our env (stepping,
features lookup, the wider observation) relative to the cheapest classic-control env.
Target: >= 0.8. Real candles: data/sample/btcusdt_1m_2023-03.csv.gz.

    python -m benchmarks.bench_trainer [--timesteps 40960] [--n-envs 4] [--vec-env dummy|subproc]
"""

from __future__ import annotations

import argparse
import functools
import time

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from benchmarks.common import real_candles
from env.crypto_trading_env import CryptoTradingEnv


@functools.cache
def _candles():
    return real_candles(30_240)


def crypto_env() -> gym.Env:
    return CryptoTradingEnv(_candles(), random_start=True, episode_length=2048)


def cartpole_env() -> gym.Env:
    return gym.make("CartPole-v1")


def steps_per_second(make_env, n_envs: int, vec_cls: type, timesteps: int, n_steps: int) -> float:
    vec_env = vec_cls([make_env] * n_envs)
    model = PPO("MlpPolicy", vec_env, n_steps=n_steps, batch_size=64, n_epochs=10, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=n_steps * n_envs)  # warm-up: first rollout, lazy imports
    start, done_before = time.perf_counter(), model.num_timesteps
    model.learn(total_timesteps=timesteps, reset_num_timesteps=False)
    rate = (model.num_timesteps - done_before) / (time.perf_counter() - start)
    vec_env.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=40_960)
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--n-steps", type=int, default=512)
    parser.add_argument("--vec-env", choices=("dummy", "subproc"), default="dummy")
    args = parser.parse_args()
    torch.set_num_threads(1)
    vec_cls = DummyVecEnv if args.vec_env == "dummy" else SubprocVecEnv
    print(f"PPO MlpPolicy, n_steps={args.n_steps}, batch 64, 10 epochs, {args.n_envs} envs ({vec_cls.__name__}), "
          f"{args.timesteps} timesteps, 1 torch thread")
    cartpole = steps_per_second(cartpole_env, args.n_envs, vec_cls, args.timesteps, args.n_steps)
    crypto = steps_per_second(crypto_env, args.n_envs, vec_cls, args.timesteps, args.n_steps)
    print(f"CartPole-v1       {cartpole:8.0f} timesteps/s  (baseline)")
    print(f"CryptoTradingEnv  {crypto:8.0f} timesteps/s")
    print(f"ratio crypto / cartpole = {crypto / cartpole:.2f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
