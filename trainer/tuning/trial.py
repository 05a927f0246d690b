"""One tuning trial, run by a worker: walk-forward folds with fixed parameters, pruned early
when its running score falls below the median of earlier trials.

The worker never sees the held-out test slice: it gets only the tuning candles (what
precedes the slice ``shadow train`` would test on). Fold ``k`` trains on a window with
:class:`trainer.training.fold_trainer.PPOTrainer` (so :func:`trainer.training.fit.fit`) and backtests the
model on the validation slice right after it, under the one evaluation spec
(:class:`trainer.evaluation.backtest.EvaluationSpec`, as the retraining gate scores); the fold's
score is the slice's total return (or Sharpe ratio), and after each fold the mean so far is
reported at step ``k``. With ``[tune] seeds`` N > 1 each fold trains N models and its score is
their mean; the trial also records each seed's mean score, so the spread is in trials.csv.

**Pruning is decided here, against a snapshot.** The driver sends the completed trials it
knew when it asked for this one; the worker replays them into an in-memory study with the
same ``MedianPruner`` and asks it after each fold. The decision depends only on what the
driver knew at that moment, not on which other trial happens to finish first, so a
search gives the same trials on any backend and with any worker count.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from config.errors import UserError
from config.settings import Settings
from trainer.evaluation.metrics import Metrics
from trainer.tuning.folds import FoldPlan

if TYPE_CHECKING:
    import optuna

TrialState = Literal["complete", "pruned", "failed"]


@dataclass(frozen=True)
class PrunerConfig:
    """``optuna.pruners.MedianPruner`` arguments plus the completed trials to judge against."""

    n_startup_trials: int
    n_warmup_steps: int
    completed: list[optuna.trial.FrozenTrial] = field(default_factory=list)

    def pruner(self) -> optuna.pruners.MedianPruner:
        import optuna

        return optuna.pruners.MedianPruner(n_startup_trials=self.n_startup_trials, n_warmup_steps=self.n_warmup_steps)


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs for one trial, except the candles (shared once per run)."""

    number: int
    params: dict[str, Any]
    settings: Settings
    plan: FoldPlan
    symbol: str
    pruning: PrunerConfig


@dataclass(frozen=True)
class TrialOutcome:
    """What a trial returns to the driver.

    Args:
        intermediate: fold index -> mean score of the folds so far (what pruning saw).
        fold_scores: each fold's score (the mean over the seeds).
        fold_metrics: per fold and seed, the model's validation metrics (return, Sharpe, trades,
            timing, ...), with ``fold`` and ``model`` (``ppo``, or ``ppo#r`` for seed replica r).
        seed_scores: each seed replica's mean score over the folds it ran.
        value: mean score over all folds (complete trials only).
        error: why a failed trial failed.
    """

    number: int
    state: TrialState
    value: float | None
    intermediate: dict[int, float]
    fold_scores: list[float]
    fold_metrics: list[dict[str, Any]]
    duration_s: float
    error: str | None = None
    seed_scores: list[float] = field(default_factory=list)


def fold_score(metrics: Metrics, objective: str) -> float:
    """A fold's score: total return, or Sharpe (an undefined Sharpe counts as 0: no edge shown)."""
    if objective == "sharpe":
        return float(metrics.sharpe) if metrics.sharpe is not None else 0.0
    return float(metrics.total_return)


def run_trial(job: TrialJob, candles: pd.DataFrame) -> TrialOutcome:
    """Train and score ``job``'s folds on ``candles`` (the tuning candles only)."""
    import optuna

    from strategies.ppo import load_ppo_strategy
    from trainer.evaluation.backtest import EvaluationSpec
    from trainer.evaluation.walk_forward import FoldResult, model_labels, walk_forward
    from trainer.training.fold_trainer import PPOTrainer

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    settings = job.settings
    judge = optuna.create_study(direction="maximize", pruner=job.pruning.pruner())
    judge.add_trials(job.pruning.completed)
    trial = judge.ask()
    intermediate: dict[int, float] = {}
    fold_metrics: list[dict[str, Any]] = []
    scores: list[float] = []
    labels = model_labels(settings.tune.seeds)
    per_seed: dict[str, list[float]] = {label: [] for label in labels}

    def report(fold: FoldResult) -> None:
        for label in labels:
            metrics = fold.results[label].metrics
            fold_metrics.append({"fold": fold.fold.index + 1, "model": label} | metrics.to_dict())
            per_seed[label].append(fold_score(metrics, settings.tune.objective))
        scores.append(statistics.fmean(per_seed[label][-1] for label in labels))
        value = statistics.fmean(scores)
        intermediate[fold.fold.index] = value
        trial.report(value, fold.fold.index)
        if trial.should_prune():
            raise optuna.TrialPruned()

    state: TrialState = "complete"
    error = None
    with tempfile.TemporaryDirectory(prefix=f"shadow-trial-{job.number}-") as scratch:
        try:
            walk_forward(
                candles, train_fn=PPOTrainer(settings.tune.timesteps, settings.train, symbol=job.symbol),
                spec=EvaluationSpec.from_settings(settings), baselines=[],
                load_model=lambda path: load_ppo_strategy(path, lookback_window=settings.env.lookback_window),
                train=job.plan.train, test=job.plan.validation, max_folds=job.plan.folds, seed=settings.train.seed,
                seeds=settings.tune.seeds, out_dir=Path(scratch), on_fold=report,
            )
        except optuna.TrialPruned:
            state = "pruned"
        except Exception as exc:  # a failed trial is recorded; the search goes on
            state = "failed"
            error = str(exc) if isinstance(exc, UserError) else traceback.format_exc(limit=6)
    value = intermediate[max(intermediate)] if state == "complete" else None
    return TrialOutcome(job.number, state, value, intermediate, scores, fold_metrics, time.perf_counter() - started,
                        error, [statistics.fmean(values) for values in per_seed.values() if values])
