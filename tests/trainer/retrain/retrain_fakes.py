"""Trainers for the retraining tests, run inside the real child process (``python -m
trainer.retrain``) by naming them in the job (``tests.trainer.retrain.retrain_fakes:NAME``).

Each breaks the child in one way the parent must survive, or stands in for training with
a prepared model so a test controls what the gate sees. All share the signature of
:class:`trainer.retrain.candidate.CandidateTrainer`.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from config.settings import Settings
from strategies.model_metadata import metadata_path

MODEL_VARIABLE = "SHADOW_TEST_CANDIDATE"
"""Environment variable naming the zip :func:`copies_model` hands back as the candidate."""


def raises(train: Sequence[pd.DataFrame], settings: Settings, out_dir: Path, **_: object) -> Path:
    raise RuntimeError("the trainer failed on purpose")


def sigkill(train: Sequence[pd.DataFrame], settings: Settings, out_dir: Path, **_: object) -> Path:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def sleeps(train: Sequence[pd.DataFrame], settings: Settings, out_dir: Path, **_: object) -> Path:
    time.sleep(600)
    raise AssertionError("the parent should have killed this process")


def allocates(train: Sequence[pd.DataFrame], settings: Settings, out_dir: Path, **_: object) -> Path:
    """Ask for as much memory as the limit allows in total: only the limit can refuse it."""
    held = bytearray(settings.retrain.memory_limit_mb * 1024 * 1024)
    raise AssertionError(f"allocated {len(held)} bytes: the memory limit is not enforced")


def garbage_zip(train: Sequence[pd.DataFrame], settings: Settings, out_dir: Path, **_: object) -> Path:
    """A zip that is not a model, beside valid metadata (so only loading it can tell)."""
    path = out_dir / "candidate.zip"
    path.write_bytes(b"PK\x03\x04 this is not a model" * 10)
    shutil.copy(metadata_path(os.environ[MODEL_VARIABLE]), metadata_path(path))
    return path


def copies_model(train: Sequence[pd.DataFrame], settings: Settings, out_dir: Path, **_: object) -> Path:
    """The prepared model named by ``$SHADOW_TEST_CANDIDATE``, as if just trained."""
    source = Path(os.environ[MODEL_VARIABLE])
    path = out_dir / "candidate.zip"
    shutil.copy(source, path)
    shutil.copy(metadata_path(source), metadata_path(path))
    return path


FAILURES = (raises, sigkill, sleeps, allocates, garbage_zip)


def each_failure(train: Sequence[pd.DataFrame], settings: Settings, out_dir: Path, *, seed: int,
                 **kwargs: object) -> Path:
    """Retrain run k (seed k with ``[retrain] seed = 0``) fails the k-th way of :data:`FAILURES`."""
    return FAILURES[(seed - 1) % len(FAILURES)](train, settings, out_dir, seed=seed, **kwargs)

