"""The PPO trainer of walk-forward folds: one ``learn`` call per fold, on the fold's training window.

It satisfies :class:`trainer.evaluation.walk_forward.TrainFn`, which is how ``shadow
evaluate --walk-forward``, tuning trials and ``shadow demo`` hand it to the fold loop (the
loop itself never imports training).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from config.settings import EnvSettings, Settings, TrainSettings
from env.intervals import GRIDS, infer_grid
from trainer.training.fit import fit


@dataclass(frozen=True)
class PPOTrainer:
    """A :class:`~trainer.evaluation.walk_forward.TrainFn`: :func:`trainer.training.fit.fit` (the
    routine ``shadow train`` uses) with the ``[train]`` hyperparameters, on random-start
    ``CryptoTradingEnv`` episodes. No validation, checkpoints, logs or progress bar: a fold
    is one ``learn`` call.

    Args:
        total_timesteps: environment steps per fold.
        args: the ``[train]`` settings.
        symbol: recorded in the model metadata (default: ``args.symbol``).
    """

    total_timesteps: int
    args: TrainSettings = field(default_factory=TrainSettings)
    symbol: str | None = None

    def __call__(self, train: pd.DataFrame, *, seed: int, model_path: Path, env_settings: EnvSettings,
                 extra: dict[str, Any]) -> Path:
        # A small fold budget still gets a few updates: the rollout never exceeds it.
        n_steps = max(8, min(self.args.n_steps, self.total_timesteps // self.args.n_envs))
        args = self.args.model_copy(update={
            "total_timesteps": self.total_timesteps, "n_steps": n_steps, "progress": False,
            "batch_size": max(2, min(self.args.batch_size, n_steps * self.args.n_envs)),
        })
        settings = Settings.model_construct(train=args, env=env_settings)
        result = fit(train, None, settings, model_path.parent, seed=seed, symbol=self.symbol or args.symbol,
                     timeframe=_timeframe(train["open_time_ms"].to_numpy()),
                     model_name=model_path.name,
                     extra={"trainer": f"{__name__}.PPOTrainer", "total_timesteps": self.total_timesteps} | extra)
        return result.model_path


def _timeframe(open_time_ms: np.ndarray) -> str:
    """The timeframe name of candles opening at these times (``"1m"``, ``"1w"``, ``"1M"``: the
    names exchanges use), or their spacing (``"2m"``) when it is no exchange interval."""
    found = infer_grid(open_time_ms)
    if found.name in GRIDS:
        return found.name
    interval_ms = found.nominal_ms
    for unit, ms in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if interval_ms % ms == 0:
            return f"{interval_ms // ms}{unit}"
    return f"{interval_ms}ms"
