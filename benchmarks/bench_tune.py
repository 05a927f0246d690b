"""Benchmark of ``shadow tune``'s backends on this machine.

1. **Local speed-up.** The same N-trial search (real BTC candles, walk-forward folds, TPE +
   median pruning) with the local backend at 1 worker and at 2 workers. Both runs use
   ``parallel_trials = 2``, so they run exactly the same trials (checked): the ratio is
   the parallel speed-up alone, not a difference in what was searched.
2. **Ray overhead.** The same search on a local Ray instance (``ray.init(num_cpus=2)``), 2
   workers, against the local backend at 2 workers: wall time difference per trial. Ray's
   start-up is timed apart. Also the bare cost of one job (a function returning at once)
   through each backend, 40 jobs, 2 at a time.

Run: ``python -m benchmarks.bench_tune [--trials 8] [--timesteps 2048]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import SAMPLE
from config.settings import Settings, load_settings
from trainer.jobs.backends import Backend, LocalBackend, RayBackend
from trainer.jobs.board import Board
from trainer.jobs.runner import Job, run_jobs
from trainer.tuning.search import tune


def search_settings(out: Path, trials: int, timesteps: int) -> Settings:
    return load_settings(
        None,
        train={"data": SAMPLE, "num_candles": 8000, "n_envs": 2, "n_epochs": 4, "episode_length": 512,
               "progress": False, "test_data_path": out / "test_data.csv"},
        tune={"n_trials": trials, "timesteps": timesteps, "folds": 2, "parallel_trials": 2, "startup_trials": 3,
              "prune_startup_trials": 2, "out_dir": out, "seed": 0,
              "space": {"n_steps": [128, 256, 512], "batch_size": [64, 128], "net_arch": [[64, 64], [128, 128]]}},
    )


def timed_search(backend: Backend, trials: int, timesteps: int) -> tuple[float, pd.DataFrame]:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        tune(search_settings(Path(folder), trials, timesteps), backend, board=Board("bench"))
        elapsed = time.perf_counter() - started
        return elapsed, pd.read_csv(Path(folder) / "trials.csv")


def noop(x: int) -> int:
    return x


def job_overhead_s(backend: Backend, jobs: int = 40) -> float:
    started = time.perf_counter()
    run_jobs(backend, lambda i: Job(str(i), noop, (i,)) if i < jobs else None, lambda i, o: None)
    return (time.perf_counter() - started) / jobs


def same_trials(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    columns = [c for c in a.columns if c != "duration_s"]
    return a[columns].astype(object).fillna("").equals(b[columns].astype(object).fillna(""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--timesteps", type=int, default=2048, help="PPO timesteps per fold")
    args = parser.parse_args()
    results: dict[str, Any] = {}

    one = LocalBackend(1)
    job_overhead_s(one, 4)  # start the fork server (imports torch once) outside the timings
    results["local 1 worker"] = timed_search(one, args.trials, args.timesteps)
    one.close()
    two = LocalBackend(2)
    results["local 2 workers"] = timed_search(two, args.trials, args.timesteps)
    local_job = job_overhead_s(two)
    two.close()

    import ray

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - started
    on_ray = RayBackend(None, None, torch_threads=1)
    results["ray 2 workers"] = timed_search(on_ray, args.trials, args.timesteps)
    ray_job = job_overhead_s(on_ray)
    on_ray.close()
    ray.shutdown()

    base = results["local 1 worker"][1]
    print(f"{args.trials} trials x 2 folds x {args.timesteps} timesteps, real BTCUSDT 1m candles, parallel_trials=2")
    print(f"{'backend':<18} {'wall s':>8} {'s/trial':>8} {'complete':>9} {'pruned':>7} {'same trials':>12}")
    for name, (wall, frame) in results.items():
        states = frame["state"].value_counts()
        print(f"{name:<18} {wall:8.1f} {wall / args.trials:8.2f} {states.get('complete', 0):9d} "
              f"{states.get('pruned', 0):7d} {same_trials(base, frame)!s:>12}")
    speedup = results["local 1 worker"][0] / results["local 2 workers"][0]
    overhead = (results["ray 2 workers"][0] - results["local 2 workers"][0]) / args.trials
    print(f"local speed-up, 2 workers vs 1: {speedup:.2f}x")
    print(f"Ray vs local (2 workers): {overhead:+.2f} s per trial; ray.init {ray_start:.1f} s (not in the search time)")
    print(f"bare job round trip: local {1000 * local_job:.1f} ms, Ray {1000 * ray_job:.1f} ms")


if __name__ == "__main__":
    main()
