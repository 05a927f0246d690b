"""Prepared PPO models for the retraining tests: a trained model's network with its action
head replaced, so the policy takes one action whatever it sees. The gate's verdict on
such a model is known in advance (always BUY on a rising holdout beats flat; always CLOSE
is flat), which is what tests of promotion and hot-swap need."""

from __future__ import annotations

import shutil
from pathlib import Path

from env.types import Action
from strategies.model_metadata import metadata_path


def constant_model(source: Path, action: Action, path: Path) -> Path:
    """``source`` with logits 0 except 10 for ``action``; saved to ``path`` with its metadata."""
    import torch
    from stable_baselines3 import PPO

    model = PPO.load(source, device="cpu")
    with torch.no_grad():
        head = model.policy.action_net
        head.weight.zero_()
        head.bias.zero_()
        head.bias[int(action)] = 10.0
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    shutil.copy(metadata_path(source), metadata_path(path))
    return path
