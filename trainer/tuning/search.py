"""``shadow tune``: hyperparameter search with Optuna, scored by walk-forward validation.

1. **Data.** The candles ``shadow train`` would use (``--data`` or Bybit through the cache).
   The test slice that ``shadow train`` holds out is cut off first and never reaches a
   trial: with a searched lookback, the slice of the *smallest* lookback is cut, which
   contains the test slice of every lookback in the space.
2. **Folds.** Inside what is left, ``folds`` back-to-back validation slices at the end, each
   preceded by a training window (:class:`trainer.tuning.folds.FoldPlan`). The slices are the
   same candles for every trial, whatever its lookback.
3. **Trials.** The driver owns the study (TPE sampler, median pruner, SQLite storage by
   default): it asks for a trial, sends its parameters to a worker
   (:func:`trainer.tuning.trial.run_trial`) through the backend, and tells the study the
   outcome: complete (mean fold score), pruned, or failed (recorded, the search goes on).
   Trials are asked and told in order (:func:`trainer.jobs.runner.run_jobs` ``ordered``): trial
   ``i`` is chosen knowing trials up to ``i - parallel_trials``, so the same seed and
   ``parallel_trials`` give the same trials locally with any worker count and on Ray.
4. **Summary.** :mod:`trainer.tuning.report`: trials.csv, summary.json, summary.png and the best
   trial as a config file (best.toml) for ``shadow train --config``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.settings import Settings
from trainer.data.history import OhlcvSource
from trainer.jobs.backends import Backend
from trainer.jobs.board import Board, Status
from trainer.jobs.runner import Job, JobOutcome, run_jobs
from trainer.training.single_symbol import check_train_args, load_training_candles
from trainer.tuning.folds import TuningData, prepare_tuning_data
from trainer.tuning.space import apply, describe_params, suggest
from trainer.tuning.trial import PrunerConfig, TrialJob, TrialOutcome, run_trial

log = logging.getLogger(__name__)

_BOARD_STATUS: dict[str, Status] = {"complete": "done", "pruned": "pruned", "failed": "failed"}
"""How the live table shows a trial's state."""


@dataclass
class TuneResult:
    """This run's trials (by number), the study's best, and the files written."""

    study_name: str
    storage: str
    outcomes: dict[int, TrialOutcome] = field(default_factory=dict)
    best_number: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    interrupted: bool = False


def load_tuning_data(settings: Settings, exchange: OhlcvSource | None = None) -> TuningData:
    """Check the flags, load the candles and fold them (steps 1 and 2): everything that
    fails on bad input, before the search writes anything.

    Raises:
        UserError: a bad flag or data file, or too few candles for the folds.
    """
    check_train_args(settings)
    candles, source = load_training_candles(settings.train, settings, exchange)
    return prepare_tuning_data(candles, settings, source)


def tune(settings: Settings, backend: Backend, *, board: Board | None = None,
         exchange: OhlcvSource | None = None, data: TuningData | None = None) -> TuneResult:
    """Run ``settings.tune.n_trials`` trials on ``backend``; write the summary; see the module docstring.

    Ctrl-C stops asking for trials; running ones are recorded as failed ("interrupted")
    and the summary is still written (``TuneResult.interrupted``).

    Args:
        data: from :func:`load_tuning_data` (default: loaded here).
    """
    import optuna

    from trainer.tuning.report import write_tune_outputs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ts = settings.tune
    data = data or load_tuning_data(settings, exchange)
    ts.out_dir.mkdir(parents=True, exist_ok=True)
    storage = ts.storage or f"sqlite:///{ts.out_dir / 'study.sqlite'}"
    study = optuna.create_study(
        study_name=ts.study_name, storage=storage, load_if_exists=True, direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=ts.seed, n_startup_trials=ts.startup_trials),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=ts.prune_startup_trials,
                                           n_warmup_steps=ts.prune_warmup_folds),
    )
    study.set_user_attr("objective", ts.objective)
    board = board or Board(f"shadow tune: {ts.study_name}", value_label=f"mean {ts.objective}")
    result = TuneResult(ts.study_name, storage)
    shared = backend.share(data.candles)
    asked: dict[int, optuna.Trial] = {}
    deadline = time.monotonic() + ts.timeout_s if ts.timeout_s else None
    symbol = settings.train.symbol

    def make_job(index: int) -> Job | None:
        if index >= ts.n_trials or (deadline is not None and time.monotonic() > deadline):
            return None
        trial = study.ask()
        params = suggest(trial, ts.space)
        completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        pruning = PrunerConfig(ts.prune_startup_trials, ts.prune_warmup_folds, completed)
        asked[index] = trial
        job = TrialJob(trial.number, params, apply(settings, params), data.plan, symbol, pruning)
        return Job(f"trial {trial.number}", run_trial, (job, shared))

    def on_start(index: int, job: Job) -> None:
        board.start(job.key, describe_params(job.args[0].params))

    def on_finish(index: int, outcome: JobOutcome) -> None:
        trial = asked.pop(index)
        trial_outcome = outcome.result if outcome.ok else TrialOutcome(
            trial.number, "failed", None, {}, [], [], 0.0, outcome.error)
        _tell(study, trial, trial_outcome)
        result.outcomes[trial.number] = trial_outcome
        status = _BOARD_STATUS[trial_outcome.state]
        shown = trial_outcome.value if trial_outcome.state == "complete" else (
            trial_outcome.intermediate[max(trial_outcome.intermediate)] if trial_outcome.intermediate else None)
        detail = None if trial_outcome.error is None else trial_outcome.error.strip().splitlines()[-1]
        board.finish(outcome.key, status, shown, detail)

    try:
        run_jobs(backend, make_job, on_finish, on_start=on_start, ordered=True, window=ts.parallel_trials)
    except KeyboardInterrupt:
        result.interrupted = True
        log.warning("interrupted: recording running trials as failed and writing the summary")
        for trial in asked.values():
            trial.set_user_attr("error", "interrupted")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if complete:
        best = study.best_trial
        result.best_number, result.best_value, result.best_params = best.number, best.value, dict(best.params)
    result.paths = write_tune_outputs(study, settings, data)
    return result


def _tell(study: Any, trial: Any, outcome: TrialOutcome) -> None:
    """Record a worker's outcome in the study: its fold reports, metrics, then its state."""
    import optuna

    for step, value in sorted(outcome.intermediate.items()):
        trial.report(value, step)
    trial.set_user_attr("fold_scores", outcome.fold_scores)
    trial.set_user_attr("fold_metrics", outcome.fold_metrics)
    trial.set_user_attr("seed_scores", outcome.seed_scores)
    trial.set_user_attr("duration_s", round(outcome.duration_s, 3))
    if outcome.error is not None:
        trial.set_user_attr("error", outcome.error)
    states = {"pruned": optuna.trial.TrialState.PRUNED, "failed": optuna.trial.TrialState.FAIL}
    if outcome.state == "complete":
        study.tell(trial, outcome.value)
    else:
        study.tell(trial, state=states[outcome.state])
