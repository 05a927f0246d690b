"""TensorBoard run folders: ``{log_dir}/tensorboard/PPO_{n}``, numbered the same wherever a run trains.

SB3 names a new run ``PPO_{latest + 1}`` and continues ``PPO_{latest}`` on resume, after the
highest folder it finds. A job trained in a scratch folder (:mod:`trainer.jobs.files`) must
number its run as the real log folder would, so the driver reads the latest number and the
worker recreates it.
"""

from __future__ import annotations

from pathlib import Path

TB_LOG_NAME = "PPO"
"""SB3's ``tb_log_name``: the prefix of every run folder."""


def tensorboard_dir(log_dir: Path) -> Path:
    """Where the runs of ``log_dir`` go."""
    return log_dir / "tensorboard"


def latest_tensorboard_run(log_dir: Path) -> int:
    """The highest ``n`` of the ``PPO_n`` runs already in ``{log_dir}/tensorboard`` (0: none)."""
    from stable_baselines3.common.utils import get_latest_run_id

    return get_latest_run_id(str(tensorboard_dir(log_dir)), TB_LOG_NAME)


def continue_tensorboard_numbering(scratch_log_dir: Path, latest_run: int) -> None:
    """Make a scratch log folder number TensorBoard runs as the real one does: an empty
    ``PPO_{latest_run}`` folder is all SB3 needs to see."""
    if latest_run > 0:
        (tensorboard_dir(scratch_log_dir) / f"{TB_LOG_NAME}_{latest_run}").mkdir(parents=True, exist_ok=True)
