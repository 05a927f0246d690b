"""How often should PPO update? The default profile's rollout length and batch size, measured.

Trains the default profile (net reward, target-position actions) with several rollout
lengths per env (``n_steps``) and minibatch sizes on the first 70% of the bundled BTCUSDT
candles, several seeds each, through the project's own trainer (:func:`trainer.training.fit.fit`)
on the local job backend, then reports on the validation slice (the next 15%, never trained
on): the convergence diagnostics (:mod:`trainer.training.diagnostics`) and the validation
backtest's return, timing, trades and fees (:mod:`trainer.evaluation.metrics`, scored with
the live risk guard). The seed profile's setup is the reference row. Mean over seeds, range
in brackets. Training time is per run, with ``--workers`` runs side by side (so it measures
relative cost only).

    python -m benchmarks.bench_cadence [--timesteps 60000] [--seeds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import SAMPLE, run_on_local_backend
from config.settings import Settings, load_settings
from env.candles import load_candles
from trainer.jobs.runner import Job

SETUPS: dict[str, dict[str, Any]] = {
    "seed profile (2048/env, batch 64)": {"profile": "seed"},
    "default, n_steps 2048, batch 64": {"train": {"n_steps": 2048, "batch_size": 64}},
    "default, n_steps 2048, batch 256": {"train": {"n_steps": 2048, "batch_size": 256}},
    "default, n_steps 1024, batch 256": {"train": {"n_steps": 1024, "batch_size": 256}},
    "default, n_steps 512, batch 256": {"train": {"n_steps": 512, "batch_size": 256}},
    "default, n_steps 256, batch 256": {"train": {"n_steps": 256, "batch_size": 256}},
    "default, n_steps 128, batch 256": {"train": {"n_steps": 128, "batch_size": 256}},
    "default, n_steps 256, batch 64": {"train": {"n_steps": 256, "batch_size": 64}},
}
"""Name -> settings overlay on the default profile."""


def settings_of(overlay: dict[str, Any], timesteps: int) -> Settings:
    train = {"total_timesteps": timesteps, "progress": False, "eval_freq": timesteps} | overlay.get("train", {})
    return load_settings(None, profile=overlay.get("profile", "default"), train=train)


def train_and_score(name: str, overlay: dict[str, Any], seed: int, timesteps: int,
                    frames: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, Any]:
    """One run (a job on the backend): train, then score the final model on the validation slice."""
    from strategies.ppo import PPOStrategy
    from trainer.evaluation.backtest import EvaluationSpec
    from trainer.training.fit import fit

    settings = settings_of(overlay, timesteps)
    train, validation = frames
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = fit(train, validation, settings, Path(folder), seed=seed, symbol="BTCUSDT", timeframe="1m")
        seconds = time.perf_counter() - started
        model = PPOStrategy.load(result.model_path)
        (scored,) = EvaluationSpec.from_settings(settings).compare([model], validation)
    args = settings.train
    rollout = args.n_steps * args.n_envs
    updates = -(-timesteps // rollout)  # SB3 finishes the rollout that crosses the budget
    return {"setup": name, "seed": seed, "seconds": seconds, "updates": updates,
            "gradient_steps": updates * args.n_epochs * -(-rollout // args.batch_size),
            **result.metadata.diagnostics, **scored.metrics.to_dict()}


def split(candles: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``shadow train``'s chronological split (default fractions): train and validation frames."""
    from trainer.training.single_symbol import split_candles

    parts = split_candles(candles, load_settings(None), str(SAMPLE))
    return parts.train.frame, parts.validation.frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=60_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    frames = split(load_candles(SAMPLE))
    print(f"{SAMPLE.name}: train {len(frames[0]):,} candles, validation {len(frames[1]):,} (with warm-up); "
          f"{args.timesteps:,} timesteps, {args.seeds} seeds, {args.workers} runs at a time, 1 torch thread each")
    jobs = [Job(f"{name} seed {seed}", train_and_score, (name, SETUPS[name], seed, args.timesteps, frames))
            for name in SETUPS for seed in range(args.seeds)]
    print_table(pd.DataFrame(run_on_local_backend(jobs, args.workers)))


COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("updates", "PPO updates", "{:.0f}"), ("gradient_steps", "gradient steps", "{:.0f}"),
    ("seconds", "train s", "{:.0f}"), ("flip_rate", "argmax flips", "{:.1%}"),
    ("entropy_ratio", "entropy/uniform", "{:.2f}"), ("round_trips_per_1000", "round trips/1k", "{:.1f}"),
    ("fees_to_capital", "fees % cap.", "{:.2%}"), ("total_return", "val. return", "{:+.2%}"),
    ("timing", "timing", "{:+.2%}"),
)


def print_table(frame: pd.DataFrame) -> None:
    """Markdown: one row per setup, mean (min .. max) over seeds."""
    shown = COLUMNS
    print("\n| setup | " + " | ".join(label for _, label, _ in shown) + " |")
    print("|---|" + "---:|" * len(shown))
    for name in SETUPS:
        runs = frame[frame["setup"] == name]
        cells = []
        for key, _, form in shown:
            values = [float(v) for v in runs[key] if v is not None and v == v]
            mean = statistics.fmean(values) if values else float("nan")
            spread = f" ({form.format(min(values))} .. {form.format(max(values))})" if key in (
                "flip_rate", "total_return", "timing", "fees_to_capital") and len(values) > 1 else ""
            cells.append(form.format(mean) + spread)
        print(f"| {name} | " + " | ".join(cells) + " |")
    seed_time = frame[frame["setup"] == next(iter(SETUPS))]["seconds"].mean()
    print("\ntraining time relative to the seed profile's setup: " + ", ".join(
        f"{name.removeprefix('default, ')} {frame[frame['setup'] == name]['seconds'].mean() / seed_time:.2f}"
        for name in list(SETUPS)[1:]))


if __name__ == "__main__":
    main()
