"""Run CLI commands in a scratch working directory: the trainer's outputs and its log file
(``ppo_training.log``) are relative to it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def working_dir(folder: Path) -> Iterator[Path]:
    """``chdir`` into ``folder``; afterwards go back and close the log handlers opened meanwhile."""
    cwd, handlers = os.getcwd(), list(logging.getLogger().handlers)
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(cwd)
        for handler in set(logging.getLogger().handlers) - set(handlers):
            logging.getLogger().removeHandler(handler)
            handler.close()
