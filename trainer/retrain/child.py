"""The retraining process: ``python -m trainer.retrain JOB.json``.

Started by :mod:`trainer.retrain.runner` (inside ``shadow run``, or by ``shadow retrain
--now``), never imported by the daemon. It

1. caps itself: address-space limit (``[retrain] memory_limit_mb``), niceness, one torch
   thread, and exits if its parent dies;
2. reads the job's candles from the ledger, **read-only** (it never writes the ledger: the
   parent records everything, so a killed child leaves no half-written row);
3. splits them into a training window and the most recent holdout (:mod:`trainer.retrain.gate`);
4. trains the candidate (the job's trainer, :func:`trainer.retrain.candidate.train_candidate` by
   default), warm-started from the incumbent if asked, stopping cleanly after
   :data:`TRAINING_SHARE` of the time limit;
5. backtests candidate, incumbent and flat on the holdout and applies the gate (a candidate
   that never trades there is "no model");
6. writes ``result.json`` (or ``error.json`` with the reason, and exits with status 1).
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from config.cli import EXIT_USER_ERROR, print_error
from config.errors import UserError
from trainer.retrain.job import FAILURE_FILE, RESULT_FILE, RetrainFailure, RetrainJob, RetrainResult

if TYPE_CHECKING:
    from strategies.base import Strategy
    from trainer.evaluation.metrics import Metrics
    from trainer.retrain.candidate import CandidateTrainer

log = logging.getLogger("trainer.retrain")

FLAT = "flat"
TRAINING_SHARE = 0.8
"""Share of ``[retrain] time_limit_s`` training may use before it stops and saves: the rest
is for starting the process, reading candles and scoring, so a slow run still ends with a
verdict rather than a kill."""


def main(argv: list[str] | None = None) -> int:
    """Run the job file named on the command line; returns the exit status (0 done, 1 the
    run failed and ``error.json`` says why, 2 no usable job file: one ``error:`` line)."""
    try:
        job = read_job(sys.argv[1:] if argv is None else argv)
    except UserError as exc:
        print_error(str(exc))
        return EXIT_USER_ERROR
    out_dir = Path(job.out_dir)
    _limit_resources(job.retrain.memory_limit_mb, job.retrain.nice)
    _exit_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    try:
        result = run_job(job)
    except Exception as exc:  # everything goes back to the parent as the run's reason
        log.exception("retrain %d failed", job.retrain_id)
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        failure = RetrainFailure(error=error, memory=isinstance(exc, MemoryError))
        _write_atomically(out_dir / FAILURE_FILE, failure.model_dump_json())
        return 1
    _write_atomically(out_dir / RESULT_FILE, result.model_dump_json(indent=2))
    log.info("retrain %d: %s", job.retrain_id, result.reason)
    return 0


def read_job(args: list[str]) -> RetrainJob:
    """The job of ``python -m trainer.retrain JOB.json``.

    Raises:
        UserError: not exactly one argument, or a file that cannot be read or is no job.
    """
    if len(args) != 1:
        raise UserError("usage: python -m trainer.retrain JOB.json (a job file written by shadow run or "
                        "shadow retrain --now)")
    path = Path(args[0])
    try:
        return RetrainJob.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"retrain job {path}: cannot read it ({exc.strerror or exc})") from None
    except ValidationError as exc:
        raise UserError(f"retrain job {path}: not a retrain job ({exc.errors()[0]['msg']})") from None


def run_job(job: RetrainJob) -> RetrainResult:
    """Steps 2-5 of the module docstring."""
    from contextlib import closing

    from config.settings import Settings
    from env.candles import RepairPolicy
    from env.features import warmup_prefix
    from state.database import connect_reader
    from state.readers import read_candles
    from strategies.model_metadata import file_sha256
    from trainer.data.ledger_source import pick_series
    from trainer.evaluation.backtest import EvaluationSpec
    from trainer.models.store import verify_model_file
    from trainer.retrain.gate import gate, holdout_split, metric_value, never_trades, score_holdout

    db = Path(job.db_path)
    lookback = job.env.lookback_window
    prefix = warmup_prefix(lookback)
    splits = {}
    with closing(connect_reader(db)) as conn:
        for symbol in job.symbols:
            pick_series(conn, db, symbol, job.interval)  # a clear error naming what the ledger holds
            candles = read_candles(conn, symbol, job.interval, end_ms=job.end_ms, repair=RepairPolicy.REPAIR)
            splits[symbol] = holdout_split(candles, prefix=prefix, retrain=job.retrain,
                                           source=f"ledger {db} {symbol} {job.interval}")
    warm_start = verify_model_file(job.warm_start.entry(), lookback) if job.warm_start else None
    settings = Settings.model_construct(
        env=job.env, retrain=job.retrain,
        train=job.train.model_copy(update={"total_timesteps": job.retrain.timesteps, "progress": False}))
    train_fn = _import(job.trainer)
    started = time.monotonic()
    log.info("retrain %d: training %s on %s", job.retrain_id, "+".join(job.symbols),
             ", ".join(f"{s} {split.ranges()['train']}" for s, split in splits.items()))
    model_path = train_fn([split.train.frame for split in splits.values()], settings, Path(job.out_dir), seed=job.seed,
                          symbol=",".join(job.symbols), timeframe=job.interval, warm_start=warm_start,
                          time_limit_s=TRAINING_SHARE * job.retrain.time_limit_s)
    train_seconds = time.monotonic() - started

    from strategies.ppo import export_policy, load_ppo_strategy
    from strategies.specs import build_strategy

    export = export_policy(model_path)  # so the daemon serves (and publishes) it without torch
    sha256, policy_sha256 = file_sha256(model_path), file_sha256(export) if export else None
    candidate = load_ppo_strategy(model_path, lookback)  # scored as it will trade
    flat = build_strategy(FLAT)
    spec = EvaluationSpec(job.env, job.risk)
    holdout: dict[str, dict[str, dict[str, float | int | None]]] = {}
    per_role: dict[str, list[Metrics]] = {"candidate": [], "incumbent": [], "flat": []}
    for symbol, split in splits.items():
        incumbent = job.incumbents[symbol]
        incumbent_strategy: Strategy
        if incumbent.model is not None:
            incumbent_strategy = load_ppo_strategy(verify_model_file(incumbent.model.entry(), lookback), lookback)
        else:
            incumbent_strategy = build_strategy(incumbent.label, lookback_window=lookback)
        scored = score_holdout([candidate, incumbent_strategy, flat], split.holdout, spec)
        holdout[symbol] = {}
        for role, metrics in zip(per_role, scored, strict=True):
            per_role[role].append(metrics)
            holdout[symbol][role] = metrics.to_dict()
    metric = job.retrain.metric
    scores = {role: metric_value(values, metric) for role, values in per_role.items()}
    labels = sorted({i.label if i.model else f"fallback {i.label}" for i in job.incumbents.values()})
    decision = gate(scores["candidate"], scores["incumbent"], scores["flat"], metric=metric,
                    margin=job.retrain.margin, incumbent_label="/".join(labels),
                    traded=not never_trades(per_role["candidate"]))
    return RetrainResult(
        candidate_path=str(model_path), candidate_sha256=sha256, policy_sha256=policy_sha256,
        promote=decision.promote, reason=decision.reason, no_model=decision.no_model, scores=scores,
        holdout=holdout, ranges={s: split.ranges() for s, split in splits.items()},
        train_seconds=round(train_seconds, 3),
    )


def _limit_resources(memory_limit_mb: int | None, nice: int) -> None:
    """The limits that keep a runaway trainer from hurting the daemon beside it."""
    if memory_limit_mb is not None:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if nice:
        os.nice(nice)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _exit_with_parent() -> None:
    """Stop training for nobody: exit as soon as the parent process is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _import(target: str) -> CandidateTrainer:
    """The ``module:function`` the job names (imported only now, under the limits)."""
    import importlib

    module, _, name = target.partition(":")
    trainer: CandidateTrainer = getattr(importlib.import_module(module), name)
    return trainer


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)

