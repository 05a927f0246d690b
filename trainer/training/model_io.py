"""Save a PPO model with its metadata; load one only after checking that metadata.

Every zip the trainer writes (checkpoints, best, final) goes through
:func:`save_with_metadata`, so ``X.meta.json`` (and ``X.policy.npz``, the network served
without torch) always sits beside ``X.zip``. Loading goes
through :func:`load_ppo` (defined beside the PPO strategy, which serves the same zips), which
refuses a model built for other features before torch ever unpickles it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy

from strategies.model_metadata import ModelMetadata
from strategies.ppo import load_ppo, write_policy

__all__ = ["MetadataStamp", "load_ppo", "save_with_metadata"]

MetadataStamp = Callable[[int], ModelMetadata]
"""Builds the metadata of a model trained for the given number of timesteps."""


def save_with_metadata(model: BaseAlgorithm, path: Path, stamp: MetadataStamp) -> Path:
    """Write ``path`` (a ``.zip``), its ``.meta.json`` and its ``.policy.npz`` (the network
    for serving without torch: :mod:`strategies.policy`); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    stamp(model.num_timesteps).save_beside(path)
    if isinstance(model.policy, ActorCriticPolicy):
        write_policy(model.policy, path)
    return path
