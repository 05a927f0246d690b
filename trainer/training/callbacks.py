"""SB3 callbacks of the trainer: checkpoints with metadata, metadata for the best model,
trading metrics and convergence diagnostics in TensorBoard, a graceful stop on Ctrl-C and
a wall-clock time limit."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pandas as pd
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.logger import HParam

from config.settings import EnvSettings
from env.types import EnvInfo
from trainer.training.diagnostics import ConvergenceDiagnostics, diagnose
from trainer.training.model_io import MetadataStamp, save_with_metadata

log = logging.getLogger(__name__)


class CheckpointWithMetadata(BaseCallback):
    """Save ``{save_dir}/ppo_model_{N}_steps.zip`` (+ metadata) each time the step count
    crosses a multiple of ``every_steps``.

    Unlike SB3's ``CheckpointCallback`` this counts environment steps, not callback
    calls, so the file names are multiples of ``every_steps`` whatever ``n_envs`` is (when
    ``n_envs`` divides it; otherwise the first step count past each multiple), and a
    resumed run keeps numbering from its checkpoint's step count.
    """

    def __init__(self, save_dir: Path, every_steps: int, stamp: MetadataStamp) -> None:
        super().__init__()
        self.save_dir = save_dir
        self.every_steps = every_steps
        self.stamp = stamp
        self._next = every_steps

    def _init_callback(self) -> None:
        self._next = (self.model.num_timesteps // self.every_steps + 1) * self.every_steps

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self.save_now()
            self._next = (self.num_timesteps // self.every_steps + 1) * self.every_steps
        return True

    def save_now(self) -> Path:
        """Save a checkpoint at the current step count (also used on Ctrl-C)."""
        name = f"ppo_model_{self.model.num_timesteps}_steps.zip"
        path = save_with_metadata(self.model, self.save_dir / name, self.stamp)
        log.info("checkpoint saved: %s", path)
        return path


class MetadataOnNewBest(BaseCallback):
    """Child of ``EvalCallback`` (``callback_on_new_best``): the parent has just written
    ``best_model.zip``; write its metadata beside it."""

    def __init__(self, best_zip: Path, stamp: MetadataStamp) -> None:
        super().__init__()
        self.best_zip = best_zip
        self.stamp = stamp

    def _on_step(self) -> bool:
        self.stamp(self.model.num_timesteps).save_beside(self.best_zip)
        best = self.parent.best_mean_reward if isinstance(self.parent, EvalCallback) else float("nan")
        log.info("new best model at step %d: mean validation reward %.4f", self.model.num_timesteps, best)
        return True


class ContinuingEvalCallback(EvalCallback):
    """SB3's ``EvalCallback`` that, when ``resume`` is set, continues the previous run's
    ``evaluations.npz`` and best score instead of starting both afresh (which would
    overwrite the log and let a worse model replace ``best_model.zip``)."""

    def __init__(self, *args: Any, resume: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resume = resume

    def _init_callback(self) -> None:
        super()._init_callback()
        previous = Path(f"{self.log_path}.npz") if self.log_path else None
        if self.resume and previous is not None and previous.is_file():
            with np.load(previous) as data:
                self.evaluations_timesteps = data["timesteps"].tolist()
                self.evaluations_results = data["results"].tolist()
                self.evaluations_length = data["ep_lengths"].tolist()
            self.best_mean_reward = float(np.max(np.mean(self.evaluations_results, axis=1)))


class HParamsToTensorBoard(BaseCallback):
    """Write the run's hyperparameters once, as TensorBoard's HPARAMS table."""

    def __init__(self, hparams: dict[str, float | int | str | bool]) -> None:
        super().__init__()
        self.hparams = hparams

    def _on_training_start(self) -> None:
        metrics = {"eval/mean_reward": 0.0, "rollout/ep_rew_mean": 0.0}
        self.logger.record("hparams", HParam(self.hparams, metrics), exclude=("stdout", "log", "json", "csv"))

    def _on_step(self) -> bool:
        return True


class TradeMetrics(BaseCallback):
    """Log each finished training episode's trading outcome under ``trade/`` in TensorBoard."""

    def __init__(self, initial_balance: float) -> None:
        super().__init__()
        self.initial_balance = initial_balance

    def _on_step(self) -> bool:
        infos: list[EnvInfo] = self.locals["infos"]
        for done, info in zip(self.locals["dones"], infos, strict=True):
            if done:
                self.logger.record_mean("trade/total_pnl_pct", 100.0 * info["total_pnl"] / self.initial_balance)
                self.logger.record_mean("trade/total_trades", info["total_trades"])
                self.logger.record_mean("trade/fees_paid", info["fees_paid"])
                self.logger.record_mean("trade/max_drawdown", info["max_drawdown"])
        return True


class ConvergenceDiagnosticsCallback(BaseCallback):
    """Every ``every`` calls, and once more when training ends, measure the policy on the
    validation frames (:func:`trainer.training.diagnostics.diagnose`), log the figures under
    ``convergence/`` in TensorBoard and keep them as :attr:`latest` (for the metadata).

    Put it before the evaluation callback, so a new best model is stamped with the
    diagnostics of that very policy.
    """

    def __init__(self, frames: Sequence[pd.DataFrame], env_settings: EnvSettings, every: int) -> None:
        super().__init__()
        self.frames = list(frames)
        self.env_settings = env_settings
        self.every = every
        self.latest: ConvergenceDiagnostics | None = None

    def _on_step(self) -> bool:
        if self.n_calls % self.every == 0:
            self._measure()
        return True

    def _on_training_end(self) -> None:
        self._measure()
        self.logger.dump(self.num_timesteps)

    def _measure(self) -> None:
        self.latest = diagnose(self.model, self.frames, self.env_settings)
        for key, value in self.latest.to_dict().items():
            if value is not None and key not in ("decisions", "candles"):
                self.logger.record(f"convergence/{key}", value)


class StopOnInterrupt(BaseCallback):
    """Turn the first Ctrl-C into a clean stop at the end of the current step.

    While training runs, SIGINT sets :attr:`interrupted` and ``_on_step`` returns False,
    so ``learn()`` returns with the model in a consistent state and the caller saves a
    checkpoint. A second Ctrl-C interrupts at once (the default behaviour).

    .. warning:: Signal handlers can only be installed from the main thread; elsewhere
       this callback does nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.interrupted = False
        self._previous: Callable[[int, FrameType | None], Any] | int | None = None  # what signal.signal returns

    def _on_training_start(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _on_training_end(self) -> None:
        self.restore_handler()

    def restore_handler(self) -> None:
        """Put the previous SIGINT handler back (also called if ``learn()`` raises)."""
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        log.warning("Ctrl-C: stopping after this step and saving a checkpoint (press again to abort)")

    def _on_step(self) -> bool:
        return not self.interrupted


class StopAtDeadline(BaseCallback):
    """Stop training cleanly once ``time_limit_s`` of wall-clock time has passed since
    training started; :attr:`expired` tells the caller why ``learn()`` returned early.

    The check runs after every environment step (a few µs here), so training overshoots
    the limit by at most one step plus, when the limit falls inside an update, that
    update. ``clock`` is injectable for tests.
    """

    def __init__(self, time_limit_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.time_limit_s = time_limit_s
        self.clock = clock
        self.expired = False
        self._deadline = 0.0

    def _on_training_start(self) -> None:
        self._deadline = self.clock() + self.time_limit_s

    def _on_step(self) -> bool:
        if self.clock() >= self._deadline:
            self.expired = True
            log.warning("time limit of %.1f s reached at step %d: stopping", self.time_limit_s, self.num_timesteps)
            return False
        return True
