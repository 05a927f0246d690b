"""``shadow train --seeds N``: N models of one symbol, side by side on a backend, the best
kept as the final model and the spread reported.

On these data the spread between training seeds exceeds most effects a setting has, so one
training run says little. The driver loads the candles once; each worker runs the single-symbol
pipeline (:func:`trainer.training.single_symbol.train`) with its own seed, in a scratch folder
it sends back (:mod:`trainer.jobs.files`), and scores its final model on the validation slice
(the same split for every seed). Outputs::

    {save_path}/seed_{s}/ppo_crypto_model_final.zip, checkpoints/, best/   every seed's, kept
    {log_dir}/seed_{s}/tensorboard/, eval/, env_N/
    {save_path}/ppo_crypto_model_final.zip   a copy of the seed with the best validation return
    {save_path}/seeds.json                   every seed's validation figures, the choice, the spread
    {test_data_path}                          the test slice, as for one seed
"""

from __future__ import annotations

import json
import shutil
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from config.settings import Settings
from strategies.model_metadata import metadata_path
from strategies.policy import policy_path
from trainer.data.history import OhlcvSource
from trainer.jobs.backends import Backend
from trainer.jobs.board import Board
from trainer.jobs.files import output_targets
from trainer.jobs.runner import Job, JobOutcome, run_jobs
from trainer.training.multi_symbol import train_in_scratch
from trainer.training.single_symbol import FINAL_MODEL_NAME, check_train_args, load_training_candles
from trainer.training.tensorboard import latest_tensorboard_run

REPORT_NAME = "seeds.json"
SPREAD_FIGURES: tuple[tuple[str, str], ...] = (
    ("validation", "total_return"), ("validation", "timing"), ("validation", "n_trades"),
    ("validation", "fees_to_capital"), ("diagnostics", "flip_rate"), ("diagnostics", "entropy_ratio"),
)
"""(source, name) of each figure whose mean and range :func:`spread` gives."""


@dataclass(frozen=True)
class SeedRun:
    """One seed's model: its steps, validation metrics and convergence diagnostics."""

    seed: int
    num_timesteps: int
    model: Path
    validation: dict[str, Any]
    diagnostics: dict[str, Any]


@dataclass
class SeedsResult:
    """Every seed's run (or error), the seed chosen and where its copy went."""

    runs: dict[int, SeedRun] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    selected: int | None = None
    final_model: Path | None = None
    report: Path | None = None

    def spread(self) -> dict[str, dict[str, float] | None]:
        """Mean, min and max over the seeds of each of :data:`SPREAD_FIGURES`."""
        out: dict[str, dict[str, float] | None] = {}
        for source, name in SPREAD_FIGURES:
            values = [v for run in self.runs.values() if (v := getattr(run, source).get(name)) is not None]
            out[name] = {"mean": statistics.fmean(values), "min": min(values), "max": max(values)} if values else None
        return out


def seed_settings(settings: Settings, seed: int) -> Settings:
    """The single-seed settings of ``seed``: its own model and log folders."""
    args = settings.train
    return settings.model_copy(update={"train": args.model_copy(update={
        "seed": seed, "seeds": 1, "progress": False, "save_path": args.save_path / f"seed_{seed}",
        "log_dir": args.log_dir / f"seed_{seed}"})})


def train_seeds(settings: Settings, backend: Backend, *, board: Board | None = None,
                exchange: OhlcvSource | None = None) -> SeedsResult:
    """Train ``settings.train.seeds`` models (seeds ``seed .. seed + seeds - 1``) on ``backend``,
    keep each, copy the one with the best validation return to the final model's place and
    write ``seeds.json`` (module docstring). Bad settings fail before any work."""
    args = settings.train
    check_train_args(settings)
    candles = load_training_candles(args, settings, exchange)
    shared = backend.share(candles)
    per_seed = {f"seed {seed}": seed_settings(settings, seed) for seed in range(args.seed, args.seed + args.seeds)}
    board = board or Board(f"shadow train --seeds {args.seeds}", value_label="validation return")
    for key in per_seed:
        board.add(key)
    jobs = [Job(key, train_in_scratch, (one, shared, latest_tensorboard_run(one.train.log_dir)))
            for key, one in per_seed.items()]
    result = SeedsResult()

    def on_finish(index: int, outcome: JobOutcome) -> None:
        one = per_seed[outcome.key]
        if outcome.ok:
            outcome.result.files.deliver(output_targets(one))
            run = SeedRun(one.train.seed, outcome.result.num_timesteps, one.train.save_path / FINAL_MODEL_NAME,
                          outcome.result.validation, outcome.result.diagnostics)
            result.runs[run.seed] = run
            board.finish(outcome.key, "done", outcome.result.validation_return, f"-> {one.train.save_path}")
        else:
            result.failed[one.train.seed] = outcome.error_line
            board.finish(outcome.key, "failed", detail=result.failed[one.train.seed])

    run_jobs(backend, lambda i: jobs[i] if i < len(jobs) else None, on_finish,
             on_start=lambda index, job: board.start(job.key))
    if result.runs:
        best = max(result.runs.values(), key=lambda run: (run.validation["total_return"], -run.seed))
        result.selected = best.seed
        result.final_model = args.save_path / FINAL_MODEL_NAME
        shutil.copyfile(best.model, result.final_model)
        shutil.copyfile(metadata_path(best.model), metadata_path(result.final_model))
        if policy_path(best.model).is_file():  # the torch-free form a daemon serves (its sha256 is the zip's)
            shutil.copyfile(policy_path(best.model), policy_path(result.final_model))
    result.report = write_report(result, args.save_path / REPORT_NAME)
    return result


def write_report(result: SeedsResult, path: Path) -> Path:
    """``seeds.json``: each seed's figures, the failed seeds, the choice and the spread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "selected_seed": result.selected, "selected_by": "validation total_return",
        "final_model": None if result.final_model is None else str(result.final_model),
        "spread": result.spread(),
        "seeds": {str(seed): asdict(run) | {"model": str(run.model)} for seed, run in sorted(result.runs.items())},
        "failed": {str(seed): error for seed, error in sorted(result.failed.items())},
    }
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path
