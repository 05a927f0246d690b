"""``shadow train --symbols A,B,... --shared``: ONE model trained on every symbol's candles,
with the outputs of a single-symbol ``shadow train``.

Each symbol's candles are split chronologically on their own (:mod:`trainer.data.split`), on the
driver, before any training. The model trains on every symbol's train slice (training env
``i`` trades symbol ``i mod n``); the periodic evaluation plays one episode on each
symbol's validation slice, and their mean picks ``best/best_model.zip``; each symbol's test
slice, with its warm-up prefix, is written for backtesting. No symbol's validation or test
candles reach training, whatever the other symbols' dates are. Outputs::

    {save_path}/ppo_crypto_model_final.zip, checkpoints/, best/   (+ .meta.json beside each zip)
    {log_dir}/tensorboard/PPO_{n}/, eval/evaluations.npz (a column per symbol), env_{i}/monitor.csv
    {test_data_path.parent}/{ID}/{test_data_path.name}           per symbol (data/BTCUSDT/test_data.csv)

The metadata's ``symbol`` lists the markets (``BTC/USDT:USDT,ETH/USDT:USDT``), ``data_range``
spans every symbol's traded training candles, and ``extra["markets"]`` holds each symbol's
data source and split. The training runs as one job on the backend, in a scratch folder
sent back like a per-symbol job (:mod:`trainer.jobs.files`).

``--resume`` continues a shared model of the same symbols in the same order: env ``i`` keeps
trading the same symbol, so its ``monitor.csv`` goes on, and ``evaluations.npz`` keeps a
column per symbol. The checkpoint and those logs travel to the worker with the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from config.errors import UserError
from config.settings import Settings
from strategies.model_metadata import SHARED_SEPARATOR, market_id, metadata_path
from trainer.data.history import OhlcvSource
from trainer.jobs.backends import Backend
from trainer.jobs.board import Board
from trainer.jobs.files import JobFiles, output_targets, pack, scratch, unpack
from trainer.jobs.runner import Job, JobOutcome, run_jobs
from trainer.training.multi_symbol import symbol_settings, validation_metrics
from trainer.training.single_symbol import (
    FINAL_MODEL_NAME,
    check_resume,
    check_train_args,
    load_training_candles,
    split_candles,
    write_test_slice,
)
from trainer.training.tensorboard import continue_tensorboard_numbering, latest_tensorboard_run

RESUME_PART = "resume"
"""Archive folder of the checkpoint a resumed job continues."""


class SharedModelError(UserError):
    """A ``--shared`` combination that cannot train one model."""


@dataclass(frozen=True)
class SharedJob:
    """Everything the worker needs: settings, each symbol's train and validation slices
    (same order as ``market_ids``), the metadata's ``extra``, and for ``--resume`` the
    checkpoint and logs to continue (an archive, so a Ray worker elsewhere gets them)."""

    settings: Settings
    symbols: list[str]
    train: list[pd.DataFrame]
    validation: list[pd.DataFrame]
    extra: dict[str, Any]
    resume_state: bytes | None
    latest_tb_run: int

    @property
    def market_ids(self) -> list[str]:
        return [market_id(symbol) for symbol in self.symbols]


@dataclass(frozen=True)
class SharedResult:
    """What the worker sends back: steps, each symbol's validation metrics
    (:class:`trainer.evaluation.metrics.Metrics` as a dict), files and log."""

    num_timesteps: int
    validations: dict[str, dict[str, Any]]
    files: JobFiles

    @property
    def validation_returns(self) -> dict[str, float]:
        """Each symbol's validation return."""
        return {market: float(metrics["total_return"]) for market, metrics in self.validations.items()}

    @property
    def validation_return(self) -> float:
        """The mean over the symbols (the table's value)."""
        return sum(self.validation_returns.values()) / len(self.validation_returns)


def job_key(symbols: list[str]) -> str:
    """The shared job's row in the live table: ``shared BTCUSDT+ETHUSDT``."""
    return "shared " + "+".join(market_id(symbol) for symbol in symbols)


def check_shared_args(settings: Settings, symbols: list[str]) -> None:
    """What ``--shared`` adds to the single-symbol checks, before any data is read."""
    args, ids = settings.train, [market_id(symbol) for symbol in symbols]
    if len(symbols) < 2:
        raise SharedModelError(f"--shared trains one model on several symbols; --symbols {ids[0]} is one "
                               "(train it with --symbol, or list more)")
    if args.n_envs < len(symbols):
        raise SharedModelError(f"--shared with {len(symbols)} symbols needs --n-envs {len(symbols)} or more "
                               f"(training env i trades symbol i mod {len(symbols)}); --n-envs is {args.n_envs}")
    if args.resume is not None:
        meta = check_resume(args.resume, settings)
        if meta.market_ids() != ids:
            what = "a shared model of" if meta.shared else "a model of one symbol,"
            raise SharedModelError(
                f"--resume {args.resume} is {what} {SHARED_SEPARATOR.join(meta.market_ids())}, not of "
                f"{SHARED_SEPARATOR.join(ids)}: --shared --resume continues a shared model with the same symbols "
                "in the same order (training env i and the evaluation log's columns keep their symbol)")


def prepare_shared(settings: Settings, symbols: list[str], exchange: OhlcvSource | None = None) -> SharedJob:
    """Check the flags, load and split every symbol's candles and write each test slice:
    all that fails on bad input (a :class:`~config.errors.UserError`), before any training."""
    check_shared_args(settings, symbols)
    per_symbol = [symbol_settings(settings, symbol, shared=True) for symbol in symbols]
    for one in per_symbol:
        check_train_args(one)
    candles = [load_training_candles(one.train, one, exchange) for one in per_symbol]
    splits = [split_candles(frame, one, source) for one, (frame, source) in zip(per_symbol, candles, strict=True)]
    for one, split in zip(per_symbol, splits, strict=True):  # once every symbol's split is known to work
        write_test_slice(split, one)
    args = settings.train
    extra = {
        "markets": {market_id(one.train.symbol): {"symbol": one.train.symbol, "data_source": source,
                                                  "split": split.ranges()}
                    for one, (_, source), split in zip(per_symbol, candles, splits, strict=True)},
        "resumed_from": str(args.resume) if args.resume else None,
    }
    quiet = settings.model_copy(update={"train": args.model_copy(update={"progress": False})})  # the table shows it
    return SharedJob(quiet, list(symbols), [s.train.frame for s in splits], [s.validation.frame for s in splits],
                     extra, resume_state(args.resume, args.log_dir) if args.resume else None,
                     latest_tensorboard_run(args.log_dir))


def run_shared(job: SharedJob, backend: Backend, board: Board | None = None) -> JobOutcome:
    """Train the shared model as one job on ``backend`` and deliver its files; returns its
    outcome (a :class:`SharedResult`, or the job's error)."""
    key, args = job_key(job.symbols), job.settings.train
    board = board or Board("shadow train --symbols --shared", value_label="validation return")
    board.add(key, detail=f"{len(job.symbols)} symbols, {args.n_envs} envs")
    outcomes: list[JobOutcome] = []

    def on_finish(index: int, outcome: JobOutcome) -> None:
        outcomes.append(outcome)
        if outcome.ok:
            outcome.result.files.deliver(output_targets(job.settings))
            each = ", ".join(f"{k} {100 * v:+.2f}%" for k, v in outcome.result.validation_returns.items())
            board.finish(key, "done", outcome.result.validation_return,
                         f"{outcome.result.num_timesteps} steps ({each}) -> {args.save_path}")
        else:
            board.finish(key, "failed", detail=outcome.error_line)

    run_jobs(backend, lambda i: Job(key, train_shared_in_scratch, (job,)) if i == 0 else None, on_finish,
             on_start=lambda index, started: board.start(started.key))
    return outcomes[0]


def resume_state(resume: Path, log_dir: Path) -> bytes:
    """The checkpoint ``--resume`` names and the logs a resumed run continues (every
    evaluation so far, each env's episodes), packed for the worker."""
    entries = {f"{RESUME_PART}/{resume.name}": resume,
               f"{RESUME_PART}/{metadata_path(resume).name}": metadata_path(resume),
               "logs/eval": log_dir / "eval"}
    entries |= {f"logs/{folder.name}": folder for folder in sorted(log_dir.glob("env_*")) if folder.is_dir()}
    return pack(entries)


def train_shared_in_scratch(job: SharedJob) -> SharedResult:
    """Worker side: :func:`trainer.training.fit.fit` on every symbol's slices in a scratch folder, then
    each symbol's validation return of the final model; sends the folder and the log back."""
    from trainer.training.fit import fit

    settings, args = job.settings, job.settings.train
    with scratch() as folder:
        continue_tensorboard_numbering(folder.root / "logs", job.latest_tb_run)
        warm_start = None
        if job.resume_state is not None and args.resume is not None:
            unpack(job.resume_state, {RESUME_PART: folder.root / RESUME_PART, "logs": folder.root / "logs"})
            warm_start = folder.root / RESUME_PART / args.resume.name
        result = fit(
            job.train, job.validation, folder.settings(settings), folder.root / "save", seed=args.seed,
            symbol=SHARED_SEPARATOR.join(job.symbols), timeframe=args.timeframe, warm_start=warm_start,
            model_name=FINAL_MODEL_NAME, checkpoints=True, log_dir=folder.root / "logs", interruptible=True,
            extra=job.extra,
        )
        if result.interrupted:
            raise RuntimeError(f"{job_key(job.symbols)}: training was interrupted")
        validations = {market: validation_metrics(result.model_path, frame, settings).to_dict()
                       for market, frame in zip(job.market_ids, job.validation, strict=True)}
        return SharedResult(result.num_timesteps, validations, folder.files())
