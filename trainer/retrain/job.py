"""What the daemon hands a retraining process, and what that process hands back.

The parent (:mod:`trainer.retrain.runner`) writes a :class:`RetrainJob` as JSON, starts
``python -m trainer.retrain JOB.json`` and reads :class:`RetrainResult` (``result.json``)
or :class:`RetrainFailure` (``error.json``) from the job's folder. Both sides validate
with pydantic, so a truncated or foreign file is an error, never a half-read job.

Kept free of pandas and torch: the child imports this before it sets its memory limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from config.settings import EnvSettings, RetrainSettings, RiskSettings, TrainSettings
from state.records import ModelEntry

JOB_FILE = "job.json"
RESULT_FILE = "result.json"
FAILURE_FILE = "error.json"
LOG_FILE = "retrain.log"
DEFAULT_TRAINER = "trainer.retrain.candidate:train_candidate"
"""``module:function`` that trains the candidate (see :class:`trainer.retrain.candidate.CandidateTrainer`)."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Message):
    """A registry model as the child needs it: enough to verify the file before loading."""

    version: str
    path: str
    sha256: str
    policy_sha256: str | None = None

    @classmethod
    def of(cls, entry: ModelEntry) -> ModelRef:
        return cls(version=entry.version, path=entry.path, sha256=entry.sha256, policy_sha256=entry.policy_sha256)

    def entry(self) -> ModelEntry:
        """A registry row with these files, for :func:`trainer.models.store.verify_model_file`."""
        return ModelEntry(version=self.version, path=self.path, sha256=self.sha256, created_ms=0,
                          policy_sha256=self.policy_sha256)


class Incumbent(_Message):
    """What trades a symbol now: a promoted model, or (cold start) the fallback baseline.

    Args:
        label: the model version, or the fallback's strategy spec.
        model: the promoted model; ``None`` when ``label`` is a baseline spec.
    """

    label: str
    model: ModelRef | None = None


class RetrainJob(_Message):
    """One retraining: which candles, how to train, how to judge.

    Args:
        retrain_id: the ``retrain_runs`` row.
        db_path: the ledger, read-only in the child.
        symbols: one symbol, or several for a shared model.
        interval: the candles' interval (``1m``).
        end_ms: last candle (open time) to use; ``None``: everything stored.
        out_dir: the job's folder (absolute).
        seed: training seed.
        incumbents: per symbol, what the candidate must beat besides flat.
        warm_start: continue training this model instead of starting afresh.
        trainer: ``module:function`` training the candidate.
        env: ``[env]``, for training and for scoring.
        risk: the evaluation spec's risk guard (:class:`trainer.evaluation.backtest.EvaluationSpec`);
            ``None``: the holdout is scored unguarded.
    """

    retrain_id: int
    db_path: str
    symbols: tuple[str, ...]
    interval: str
    end_ms: int | None
    out_dir: str
    seed: int
    incumbents: dict[str, Incumbent]
    warm_start: ModelRef | None = None
    trainer: str = DEFAULT_TRAINER
    env: EnvSettings
    train: TrainSettings
    risk: RiskSettings | None
    retrain: RetrainSettings

    def write(self) -> Path:
        path = Path(self.out_dir) / JOB_FILE
        path.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        return path


class RetrainResult(_Message):
    """A finished retraining (the gate applied; publishing is the parent's job).

    Args:
        candidate_path: the trained zip (its ``.meta.json`` beside it).
        candidate_sha256: the sha256 of the bytes that were scored.
        policy_sha256: the sha256 of the network exported beside it (``None``: a network the
            export does not implement, served through SB3).
        promote / reason: the gate's verdict and why.
        no_model: the candidate never traded on the holdout (the gate's "no model").
        scores: the gate metric of ``candidate``, ``incumbent`` and ``flat`` (mean over symbols).
        holdout: per symbol, per strategy (``candidate``, ``incumbent``, ``flat``), every
            holdout metric (:class:`trainer.evaluation.metrics.Metrics`).
        ranges: per symbol, ``train`` and ``holdout`` ``{"start_ms", "end_ms", "n_candles"}``.
        train_seconds: wall time of training alone.
    """

    candidate_path: str
    candidate_sha256: str
    policy_sha256: str | None = None
    promote: bool
    reason: str
    scores: dict[str, float | None]
    holdout: dict[str, dict[str, dict[str, Any]]]
    ranges: dict[str, dict[str, dict[str, int]]]
    train_seconds: float
    no_model: bool = False


class RetrainFailure(_Message):
    """Why the child gave up: the exception, as one line."""

    error: str
    memory: bool = False
