"""Train a retraining candidate: fresh, or continued from the promoted model (warm start).

The default trainer of a retrain job (``trainer.retrain.candidate:train_candidate``) is
:func:`trainer.training.fit.fit`, the routine ``shadow train``, walk-forward folds and tuning
trials share: the ``[train]`` hyperparameters, random-start ``CryptoTradingEnv``
episodes, env ``i`` on market ``i % len(train)`` for a shared model. A job may name
another function of the same shape (:class:`CandidateTrainer`); the tests use that to
make the child fail in chosen ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pandas as pd

from config.settings import Settings

MODEL_NAME = "candidate.zip"


class CandidateTrainer(Protocol):
    """Trains on ``train`` (each frame starts with its warm-up candles) for
    ``settings.train.total_timesteps`` steps, within ``time_limit_s`` of training, and
    returns the model zip, with its ``.meta.json`` beside it, inside ``out_dir``."""

    def __call__(self, train: Sequence[pd.DataFrame], settings: Settings, out_dir: Path, *, seed: int, symbol: str,
                 timeframe: str, warm_start: Path | None, time_limit_s: float | None) -> Path: ...


def train_candidate(train: Sequence[pd.DataFrame], settings: Settings, out_dir: Path, *, seed: int, symbol: str,
                    timeframe: str, warm_start: Path | None, time_limit_s: float | None) -> Path:
    """:func:`trainer.training.fit.fit` without validation, checkpoints or logs; a run cut short by
    ``time_limit_s`` still saves its model (the gate then judges what there is)."""
    from trainer.training.fit import fit

    return fit(train, None, settings, out_dir, seed=seed, symbol=symbol, timeframe=timeframe, warm_start=warm_start,
               time_limit_s=time_limit_s, model_name=MODEL_NAME,
               extra={"trainer": "trainer.retrain.candidate.train_candidate",
                      "warm_start": str(warm_start) if warm_start else None}).model_path
