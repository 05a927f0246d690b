"""Does the policy learn? Walk-forward on the bundled candles, seed profile vs default profile,
at 1m and at a 15m decision cadence, several seeds each: the README's "Evaluation" table.

Each setup runs ``shadow evaluate --walk-forward``'s code (:func:`trainer.evaluation.walk_forward.walk_forward`
with :class:`trainer.training.fold_trainer.PPOTrainer`) on the 30,240 BTCUSDT 1m candles of March
2023: train on 10 days, test on the next 2, five folds, ``--timesteps`` PPO steps per fold. Seed
replica ``r`` trains fold ``k`` with seed ``1000 r + k`` (as ``--seeds`` does); replicas run as jobs
on the local backend. Every test slice is scored under the default evaluation spec (the live
risk guard), and once more without it to count blow-ups (the env's 50% rule). The
convergence diagnostics of each fold's model are measured on its own test slice.

    python -m benchmarks.bench_learning [--timesteps 60000] [--seeds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import SAMPLE, run_on_local_backend
from config.settings import Settings, load_settings
from env.candles import load_candles
from trainer.evaluation.walk_forward import SEED_STRIDE
from trainer.jobs.runner import Job

TRAIN_CANDLES, TEST_CANDLES = 14_400, 2_880
THREE_WEEKS = 21 * 1440
SETUPS: dict[str, dict[str, Any]] = {
    "seed profile, 1m": {"profile": "seed"},
    "default profile, 1m": {},
    "seed profile, 15m decisions": {"profile": "seed", "env": {"decision_stride": 15}},
    "default profile, 15m decisions": {"env": {"decision_stride": 15}},
    "default profile, 1m, fee x2": {"env": {"reward": {"fee_multiplier": 2.0}}},
    "default profile, 15m decisions, fee x2": {"env": {"decision_stride": 15, "reward": {"fee_multiplier": 2.0}}},
    "default profile, 1m, fee x3": {"env": {"reward": {"fee_multiplier": 3.0}}},
    "default profile, 15m decisions, fee x3": {"env": {"decision_stride": 15, "reward": {"fee_multiplier": 3.0}}},
}
"""Name -> settings overlay (profile, ``[env]``)."""


def settings_of(overlay: dict[str, Any]) -> Settings:
    return load_settings(None, profile=overlay.get("profile", "default"), env=overlay.get("env", {}))


def walk_forward_replica(name: str, overlay: dict[str, Any], replica: int, timesteps: int,
                         candles: pd.DataFrame) -> dict[str, Any]:
    """One seed replica of one setup (a job): per fold, the model's and the baselines' metrics
    (guarded), the model's unguarded run, and its diagnostics on the test slice."""
    from stable_baselines3 import PPO

    from env.features import warmup_prefix
    from strategies.baselines import BuyAndHold, Flat
    from strategies.ppo import PPOStrategy
    from trainer.evaluation.backtest import EvaluationSpec
    from trainer.evaluation.walk_forward import FoldResult, walk_forward
    from trainer.training.diagnostics import diagnose
    from trainer.training.fold_trainer import PPOTrainer

    settings = settings_of(overlay)
    spec, unguarded = EvaluationSpec.from_settings(settings), EvaluationSpec(settings.env, None)
    warmup = warmup_prefix(settings.env.lookback_window)
    folds: list[dict[str, Any]] = []

    def measure(fold: FoldResult) -> None:
        frame = candles.iloc[fold.fold.train_end - warmup : fold.fold.test_end + 1].reset_index(drop=True)
        (free,) = unguarded.compare([PPOStrategy.load(fold.model_path)], frame, start_index=warmup)
        diagnostics = diagnose(PPO.load(fold.model_path, device="cpu"), [frame], settings.env)
        folds.append({name: r.metrics.to_dict() for name, r in fold.results.items()}
                     | {"unguarded": free.metrics.to_dict() | {"blew_up": free.terminated},
                        "diagnostics": diagnostics.to_dict()})

    with tempfile.TemporaryDirectory() as folder:
        walk_forward(candles, train_fn=PPOTrainer(timesteps, settings.train, symbol="BTCUSDT"), spec=spec,
                     baselines=[BuyAndHold(), Flat()], load_model=PPOStrategy.load, train=TRAIN_CANDLES,
                     test=TEST_CANDLES, seed=SEED_STRIDE * replica, out_dir=Path(folder), on_fold=measure)
    return {"setup": name, "replica": replica, "folds": folds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=60_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--setups", default=";".join(SETUPS), help="names of SETUPS to run, separated by ';'")
    args = parser.parse_args()
    names = [n.strip() for n in args.setups.split(";")]
    unknown = [n for n in names if n not in SETUPS]
    if unknown:
        parser.error(f"unknown setup(s) {unknown}; known: {'; '.join(SETUPS)}")
    candles = load_candles(SAMPLE)
    print(f"{SAMPLE.name}: {len(candles):,} candles; walk-forward train {TRAIN_CANDLES:,} / test {TEST_CANDLES:,}, "
          f"{args.timesteps:,} PPO timesteps per fold, {args.seeds} seeds per setup, {args.workers} jobs at a time")
    jobs = [Job(f"{name} #{r + 1}", walk_forward_replica, (name, SETUPS[name], r, args.timesteps, candles))
            for name in names for r in range(args.seeds)]
    print_tables(run_on_local_backend(jobs, args.workers), names)


def chained(returns: list[float]) -> float:
    return float(np.prod([1.0 + r for r in returns]) - 1.0)


def spread(values: list[float], form: str) -> str:
    if len(values) == 1:
        return form.format(values[0])
    return f"{form.format(statistics.fmean(values))} ({form.format(min(values))} .. {form.format(max(values))})"


def print_tables(runs: list[dict[str, Any]], names: list[str]) -> None:
    """Markdown: per setup, mean (range over seeds); then the baselines on the same slices."""
    print("\n| setup | seeds | chained return | round trips / fold | fees per 3 weeks (% of capital) | mean timing "
          "per fold | net exposure | argmax flips (max) | blow-ups without the guard |")
    print("|---|---:|---|---:|---|---|---:|---:|---:|")
    baseline_folds: list[dict[str, Any]] = []
    for name in names:
        replicas = [r for r in runs if r["setup"] == name]
        if not replicas:
            continue
        baseline_folds = replicas[0]["folds"]
        per_seed = [[f["ppo"] for f in r["folds"]] for r in replicas]
        test_candles = sum(m["n_steps"] for m in per_seed[0])
        flips = [f["diagnostics"]["flip_rate"] for r in replicas for f in r["folds"]]
        returns = [chained([m["total_return"] for m in s]) for s in per_seed]
        fees = [sum(m["fees_to_capital"] for m in s) * THREE_WEEKS / test_candles for s in per_seed]
        print(f"| {name} | {len(replicas)} | {spread(returns, '{:+.1%}')}"
              f" | {statistics.fmean(m['n_trades'] for s in per_seed for m in s):.1f}"
              f" | {spread(fees, '{:.2%}')}"
              f" | {spread([statistics.fmean(m['timing'] for m in s) for s in per_seed], '{:+.2%}')}"
              f" | {statistics.fmean(m['net_exposure'] for s in per_seed for m in s):+.2f}"
              f" | {statistics.fmean(flips):.1%} ({max(flips):.1%})"
              f" | {sum(f['unguarded']['blew_up'] for r in replicas for f in r['folds'])} of "
              f"{sum(len(r['folds']) for r in replicas)} |")
    for baseline in ("buy_and_hold", "flat"):
        metrics = [f[baseline] for f in baseline_folds]
        if metrics:
            test_candles = sum(m["n_steps"] for m in metrics)
            print(f"| {baseline.replace('_', ' ')} | - | {chained([m['total_return'] for m in metrics]):+.1%} | "
                  f"{statistics.fmean(m['n_trades'] for m in metrics):.1f} | "
                  f"{sum(m['fees_to_capital'] for m in metrics) * THREE_WEEKS / test_candles:.2%} | "
                  f"{statistics.fmean(m['timing'] for m in metrics):+.2%} | "
                  f"{statistics.fmean(m['net_exposure'] for m in metrics):+.2f} | - | - |")
    print("\nper fold (mean over seeds): return / timing / round trips")
    for name in names:
        replicas = [r for r in runs if r["setup"] == name]
        cells = []
        for k in range(len(replicas[0]["folds"]) if replicas else 0):
            fold = [r["folds"][k]["ppo"] for r in replicas]
            cells.append(f"{statistics.fmean(m['total_return'] for m in fold):+.2%} / "
                         f"{statistics.fmean(m['timing'] for m in fold):+.2%} / "
                         f"{statistics.fmean(m['n_trades'] for m in fold):.0f}")
        print(f"  {name}: " + " | ".join(cells))
    if baseline_folds:
        print("  buy & hold: " + " | ".join(f"{f['buy_and_hold']['total_return']:+.2%}" for f in baseline_folds))


if __name__ == "__main__":
    main()
