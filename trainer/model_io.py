"""Save a PPO model with its metadata; load one only after checking that metadata.

Every zip the trainer writes (checkpoints, best, final) goes through
:func:`save_with_metadata`, so ``X.meta.json`` always sits beside ``X.zip``. Loading goes
through :func:`load_ppo`, which refuses a model built for other features before torch
ever unpickles it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from strategies.model_metadata import ModelMetadata, ModelMismatchError, check_compatible, load_metadata

MetadataStamp = Callable[[int], ModelMetadata]
"""Builds the metadata of a model trained for the given number of timesteps."""


def save_with_metadata(model: BaseAlgorithm, path: Path, stamp: MetadataStamp) -> Path:
    """Write ``path`` (a ``.zip``) and its ``.meta.json``; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    stamp(model.num_timesteps).save_beside(path)
    return path


def load_ppo(path: str | Path, *, lookback_window: int | None = None, device: str = "cpu", **kwargs: Any) -> PPO:
    """Load a PPO zip saved by the trainer, after checking its metadata.

    Args:
        path: the model zip.
        lookback_window: the lookback the caller's env uses, when fixed by config.
        device: torch device.
        kwargs: passed to :meth:`PPO.load` (``env=``, ``tensorboard_log=`` ...).

    Raises:
        ModelMismatchError: no such file, no or bad metadata, or a feature spec,
            lookback or observation size this code does not build.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelMismatchError(f"{path}: no such model file")
    meta = load_metadata(path)
    check_compatible(meta, path, lookback_window)
    model = PPO.load(path, device=device, **kwargs)
    if model.observation_space.shape != (meta.observation_size,):
        raise ModelMismatchError(
            f"{path}: the policy takes observations of shape {model.observation_space.shape}, "
            f"its metadata says ({meta.observation_size},)"
        )
    return model
