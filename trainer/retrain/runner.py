"""One retraining, from the parent's side: start the training process, wait for it without
blocking, and record what happened.

Used by the daemon's scheduler (:mod:`bot.retrain_scheduler`) and by ``shadow retrain
--now``, so both take exactly this path:

1. a ``retrain_runs`` row (``running``);
2. a job folder under ``<registry_dir>/.work/`` with ``job.json``;
3. ``python -m trainer.retrain job.json`` as a child process (:mod:`trainer.retrain.child`),
   awaited with ``asyncio``: the event loop keeps deciding candles meanwhile. It is killed
   when it outlives ``[retrain] time_limit_s``;
4. on success: the candidate is published to the registry (atomic copy, then the row),
   its sha256 compared with the bytes the child scored, then ``promoted`` (retiring the
   previous model) or ``rejected``, as the child's gate said; with ``[retrain]
   live_trial_candles``, a candidate that passed stays a ``candidate`` and its promotion
   is earned live (:mod:`bot.live_trials`): the run ends as ``trial`` and opens its trial;
5. the run is finished as ``promoted``, ``rejected``, ``trial`` or ``failed`` with the
   reason, and old model files are pruned (:mod:`trainer.models.retention`).

**Only the parent writes the ledger.** The child reads candles through a read-only
connection and reports through files. A child that crashes, is killed or runs out of
memory therefore leaves no half-written row, and the daemon's ledger keeps one writer
per process (``shadow retrain --now`` beside a running daemon is a second writer
process: WAL and ``BEGIN IMMEDIATE`` with the lock timeout serialise the two, and every
registry write is one short transaction).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config.accounts import challenger_name, incumbent_account, trading_accounts
from config.settings import Settings
from state.clock import SYSTEM_CLOCK, Clock
from state.ledger import Ledger
from state.records import ModelEntry, ModelStatus, RetrainStatus
from trainer.evaluation.backtest import EvaluationSpec
from trainer.models.retention import prune_registry
from trainer.models.store import promoted_model, publish_model
from trainer.retrain.job import (
    DEFAULT_TRAINER,
    FAILURE_FILE,
    LOG_FILE,
    RESULT_FILE,
    Incumbent,
    ModelRef,
    RetrainFailure,
    RetrainJob,
    RetrainResult,
)

log = logging.getLogger(__name__)

REGISTRY_STRATEGY = "registry"
ABANDON_GRACE_S = 60.0
"""A run still ``running`` this long past its time limit has no process left."""
_CODE_ROOT = Path(__file__).resolve().parents[2]  # .../trainer/retrain/runner.py
"""The folder holding Shadow's packages: the child imports the very code the parent runs."""


@dataclass(frozen=True)
class RetrainOutcome:
    """How one retraining ended.

    Args:
        retrain_id: its ``retrain_runs`` row.
        status: ``promoted``, ``rejected``, ``failed``, or ``trial`` (the candidate trades live first).
        reason: why, in one line.
        symbols: the markets it trained on.
        candidate: the published candidate (``None`` when the run failed before that).
        finished_ns: ``time.perf_counter_ns()`` when the verdict was committed (benchmarks
            time the hot-swap from here).
    """

    retrain_id: int
    status: RetrainStatus
    reason: str
    symbols: tuple[str, ...]
    candidate: ModelEntry | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    finished_ns: int = 0

    @property
    def promoted(self) -> bool:
        return self.status == RetrainStatus.PROMOTED


class _RunFailed(Exception):
    """The run cannot go on; the message is its recorded reason."""


async def run_retrain(ledger: Ledger, settings: Settings, symbols: Sequence[str], *, end_ms: int | None = None,
                      trainer_target: str = DEFAULT_TRAINER, abort: asyncio.Event | None = None,
                      clock: Clock = SYSTEM_CLOCK) -> RetrainOutcome:
    """Run one retraining of ``symbols`` (one symbol, or several for a shared model).

    Never raises for a failed run (it is recorded and returned as ``failed``).

    .. warning:: Stop a run with ``abort``, not by cancelling its task: a cancellation
       that lands inside a ledger transaction can leave that transaction open on the
       shared writer connection. ``abort`` kills the child and lets the run record itself
       as failed between transactions. (A cancellation, e.g. Ctrl-C in ``shadow retrain
       --now``, still kills the child; the run is then recorded if the ledger allows it,
       or closed as abandoned by the next daemon start.)

    Args:
        ledger: the writer of the ledger whose candles are trained on.
        settings: ``[retrain]``, ``[train]``, ``[env]``, ``[risk]``, ``[daemon]`` (the fallback
            the first model must beat), ``[feed] interval`` and ``[ledger] db_path``.
        symbols: the markets.
        end_ms: train and judge on candles up to this open time (the daemon passes the candle
            that triggered the run, so the data is fixed when the run is asked for).
        trainer_target: ``module:function`` training the candidate.
        abort: set it to stop the run: the child is killed, the run recorded as failed.
        clock: the time every row of the run is stamped with (the daemon's: virtual in a replay).
    """
    symbols = tuple(symbols)
    started = time.monotonic()
    retrain_id = await ledger.registry.start_retrain(started_ms=clock.now_ms())
    log.info("retrain %d: started for %s", retrain_id, ", ".join(symbols))
    work = settings.retrain.registry_dir.resolve() / ".work" / f"retrain-{retrain_id}"
    try:
        outcome = await _retrain(ledger, settings, retrain_id, symbols, end_ms, trainer_target, work, started, abort,
                                 clock)
    except asyncio.CancelledError:
        try:
            await _finish(ledger, retrain_id, symbols, RetrainStatus.FAILED,
                          "cancelled: the process running it stopped", started, clock)
        except Exception:  # the ledger may be mid-transaction; the next daemon start closes the run
            log.warning("retrain %d: cancelled; could not record it now", retrain_id)
        raise
    except _RunFailed as exc:
        outcome = await _finish(ledger, retrain_id, symbols, RetrainStatus.FAILED, str(exc), started, clock)
    except Exception as exc:  # a bug or a full disk must not escape into the daemon
        log.exception("retrain %d: unexpected error", retrain_id)
        outcome = await _finish(ledger, retrain_id, symbols, RetrainStatus.FAILED, f"{type(exc).__name__}: {exc}",
                                started, clock)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
    log.log(logging.WARNING if outcome.status == RetrainStatus.FAILED else logging.INFO, "retrain %d: %s: %s",
            retrain_id, outcome.status, outcome.reason)
    return outcome


async def _retrain(ledger: Ledger, settings: Settings, retrain_id: int, symbols: tuple[str, ...],
                   end_ms: int | None, trainer_target: str, work: Path, started: float,
                   abort: asyncio.Event | None, clock: Clock) -> RetrainOutcome:
    retrain, interval = settings.retrain, settings.feed.interval
    trial_against = incumbent_account(trading_accounts(settings), symbols) if retrain.live_trial_candles else None
    if retrain.live_trial_candles and trial_against is None:
        raise _RunFailed(f"[retrain] live_trial_candles = {retrain.live_trial_candles} needs an account trading the "
                         f"registry's promoted model on {', '.join(symbols)} (strategy = 'registry') to compete with")
    spec = EvaluationSpec.from_settings(settings)
    promoted = await ledger.registry.list_models(ModelStatus.PROMOTED)
    incumbents = {s: promoted_model(promoted, s, interval) for s in symbols}
    replaced = _replaced_model(promoted, incumbents, interval, shared=retrain.shared_model)
    fallback = settings.daemon.fallback if settings.daemon.strategy == REGISTRY_STRATEGY else settings.daemon.strategy
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    job = RetrainJob(
        retrain_id=retrain_id, db_path=str(settings.ledger.db_path.resolve()), symbols=symbols, interval=interval,
        end_ms=end_ms, out_dir=str(work), seed=retrain.seed + retrain_id,
        incumbents={s: Incumbent(label=m.version, model=ModelRef.of(m)) if m else Incumbent(label=fallback)
                    for s, m in incumbents.items()},
        warm_start=ModelRef.of(replaced) if retrain.warm_start and replaced else None,
        trainer=trainer_target, env=spec.env, train=settings.train, risk=spec.risk, retrain=retrain,
    )
    result = await _run_child(job.write(), work, retrain.time_limit_s, retrain.memory_limit_mb, abort)
    entry = await publish_model(
        ledger, retrain.registry_dir, Path(result.candidate_path), symbol=None if retrain.shared_model else symbols[0],
        interval=interval, parent_version=replaced.version if replaced else None,
        metrics=model_metrics(result, retrain.metric), clock=clock,
    )
    metrics = {"symbols": list(symbols), "metric": retrain.metric, "margin": retrain.margin, "scores": result.scores,
               "incumbents": {s: i.label for s, i in job.incumbents.items()},
               "warm_start": job.warm_start.version if job.warm_start else None, "ranges": result.ranges,
               "holdout": result.holdout, "train_seconds": result.train_seconds, "no_model": result.no_model}
    if entry.sha256 != result.candidate_sha256 or entry.policy_sha256 != result.policy_sha256:
        await ledger.registry.set_model_status(entry.version, ModelStatus.REJECTED, at_ms=clock.now_ms())
        raise _RunFailed(f"candidate {entry.version}: the published file differs from the one scored "
                         f"(sha256 {entry.sha256[:12]} vs {result.candidate_sha256[:12]}, exported policy "
                         f"{(entry.policy_sha256 or 'none')[:12]} vs {(result.policy_sha256 or 'none')[:12]})")
    if result.promote and trial_against is not None:  # promotion is earned live: the candidate trades first
        challenger = challenger_name(entry.version)
        reason = (f"candidate {entry.version} {result.reason}; live trial: trades as account {challenger} beside "
                  f"account {trial_against.name} for {retrain.live_trial_candles} candles")
        trial = {"challenger_account": challenger, "incumbent_account": trial_against.name, "symbols": symbols,
                 "candles": retrain.live_trial_candles, "metric": retrain.metric, "margin": retrain.margin}
        outcome = await _finish(ledger, retrain_id, symbols, RetrainStatus.TRIAL, reason, started, clock,
                                candidate=entry, metrics=metrics, trial=trial)
        await prune_registry(ledger, retrain.registry_dir, retrain.keep_models)
        return outcome
    status = ModelStatus.PROMOTED if result.promote else ModelStatus.REJECTED
    await ledger.registry.set_model_status(entry.version, status, at_ms=clock.now_ms())
    if result.promote and retrain.shared_model:
        for m in incumbents.values():  # a shared model serves these symbols only without per-symbol ones
            if m is not None and m.symbol is not None:
                await ledger.registry.set_model_status(m.version, ModelStatus.RETIRED, at_ms=clock.now_ms())
    outcome = await _finish(ledger, retrain_id, symbols, RetrainStatus(status), f"candidate {entry.version} "
                            f"{result.reason}", started, clock, candidate=replace(entry, status=status),
                            metrics=metrics)
    await prune_registry(ledger, retrain.registry_dir, retrain.keep_models)
    return outcome


async def close_abandoned_runs(ledger: Ledger, time_limit_s: float, clock: Clock = SYSTEM_CLOCK) -> list[int]:
    """Record as failed the runs still ``running`` long after any live run would have been
    killed (their process died with them: a crash, a power cut). Returns their ids."""
    cutoff_ms = clock.now_ms() - int((time_limit_s + ABANDON_GRACE_S) * 1000)
    stale = [r.retrain_id for r in await ledger.registry.list_retrains(limit=100)
             if r.status == RetrainStatus.RUNNING and r.started_ms < cutoff_ms]
    for retrain_id in stale:
        await ledger.registry.finish_retrain(retrain_id, status=RetrainStatus.FAILED, finished_ms=clock.now_ms(),
                                             reason="abandoned: the process running it stopped without finishing it")
    return stale


def _replaced_model(promoted: list[ModelEntry], incumbents: dict[str, ModelEntry | None], interval: str, *,
                    shared: bool) -> ModelEntry | None:
    """The model a promoted candidate replaces: its parent, and the warm-start source."""
    if shared:
        return next((m for m in promoted if m.symbol is None and m.interval in (interval, None)), None)
    return next(iter(incumbents.values()))


async def _run_child(job_path: Path, work: Path, time_limit_s: float, memory_limit_mb: int | None,
                     abort: asyncio.Event | None) -> RetrainResult:
    """Run the child to completion (or kill it: time limit, ``abort``) and read its result."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, (str(_CODE_ROOT), os.environ.get("PYTHONPATH")))),
                        "OMP_NUM_THREADS": "1"}
    with (work / LOG_FILE).open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "trainer.retrain", str(job_path), cwd=_CODE_ROOT, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=asyncio.subprocess.STDOUT)
    exited = asyncio.ensure_future(process.wait())
    aborted = asyncio.ensure_future((abort or asyncio.Event()).wait())
    try:
        await asyncio.wait((exited, aborted), timeout=time_limit_s, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await asyncio.shield(_kill(process))
        raise
    finally:
        aborted.cancel()
    if not exited.done():
        await _kill(process)
        if aborted.done() and not aborted.cancelled():
            raise _RunFailed("stopped: the daemon shut down while it ran; the training process was killed")
        raise _RunFailed(f"exceeded the time limit of {time_limit_s:g} s (retrain.time_limit_s) and was killed")
    returncode = exited.result()
    if returncode != 0:
        reason = _failure_reason(returncode, work, memory_limit_mb)
        log.warning("retrain child failed (%s); its log ends with:\n%s", reason, _log_tail(work, 15))
        raise _RunFailed(reason)
    try:
        return RetrainResult.model_validate_json((work / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        raise _RunFailed(f"the training process exited cleanly without a readable {RESULT_FILE} "
                         f"({type(exc).__name__})") from None


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    await process.wait()


def _failure_reason(returncode: int, work: Path, memory_limit_mb: int | None) -> str:
    failure_file = work / FAILURE_FILE
    if failure_file.is_file():
        try:
            failure = RetrainFailure.model_validate_json(failure_file.read_text(encoding="utf-8"))
        except ValidationError:
            failure = None
        if failure is not None and failure.memory:
            return f"exceeded the memory limit of {memory_limit_mb} MB (retrain.memory_limit_mb): {failure.error}"
        if failure is not None:
            return failure.error
    if returncode < 0:
        return f"the training process was killed by {signal.Signals(-returncode).name}"
    last = _log_tail(work, 1)
    return f"the training process exited with status {returncode}" + (f": {last}" if last else "")


def _log_tail(work: Path, lines: int) -> str:
    try:
        text = (work / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def model_metrics(result: RetrainResult, metric: str) -> dict[str, Any]:
    """The candidate's ``models.metrics``: flat keys a person can read in ``shadow models``
    and query with ``json_extract`` (several symbols: mean return, timing and net exposure, worst
    drawdown, all trades, fees, funding and turnover; ``holdout_timing`` is ``None`` when undefined)."""
    candidate = [by_role["candidate"] for by_role in result.holdout.values()]
    timings = [m["timing"] for m in candidate if m.get("timing") is not None]
    return {
        f"holdout_{metric}": result.scores["candidate"], f"incumbent_{metric}": result.scores["incumbent"],
        f"flat_{metric}": result.scores["flat"],
        "holdout_return": sum(m["total_return"] for m in candidate) / len(candidate),
        "holdout_timing": sum(timings) / len(timings) if timings else None,
        "holdout_net_exposure": sum(m["net_exposure"] for m in candidate) / len(candidate),
        "holdout_max_drawdown": max(m["max_drawdown"] for m in candidate),
        "holdout_trades": sum(m["n_trades"] for m in candidate),
        "holdout_fees_to_capital": sum(m["fees_to_capital"] for m in candidate),
        "holdout_funding_to_capital": sum(m["funding_to_capital"] for m in candidate),
        "holdout_turnover": sum(m["turnover"] for m in candidate),
        "no_model": result.no_model,
    }


async def _finish(ledger: Ledger, retrain_id: int, symbols: tuple[str, ...], status: RetrainStatus, reason: str,
                  started: float, clock: Clock, *, candidate: ModelEntry | None = None,
                  metrics: dict[str, Any] | None = None, trial: dict[str, Any] | None = None) -> RetrainOutcome:
    """Record the run's end (with ``trial``: the live trial it opens, in the same transaction)."""
    metrics = (metrics or {"symbols": list(symbols)}) | {"seconds": round(time.monotonic() - started, 3)}
    if trial is not None and candidate is not None:
        await ledger.trials.open_trial(retrain_id=retrain_id, at_ms=clock.now_ms(), reason=reason, metrics=metrics,
                                       candidate_version=candidate.version, **trial)
    else:
        await ledger.registry.finish_retrain(retrain_id, status=status, finished_ms=clock.now_ms(), reason=reason,
                                             candidate_version=candidate.version if candidate else None,
                                             metrics=metrics)
    return RetrainOutcome(retrain_id, status, reason, symbols, candidate, metrics, time.perf_counter_ns())
