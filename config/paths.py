"""Checks on files a command will write, made before it writes anything."""

from __future__ import annotations

import os
from pathlib import Path

from config.errors import UserError


def check_creatable(path: Path, what: str) -> None:
    """Fail now, writing nothing, if ``path`` could not be created (or appended to) later.

    Args:
        path: the file.
        what: what it is, for the message (``"log file"``, ``"ledger"``).

    Raises:
        UserError: ``path`` is a folder or is not writable, or its nearest existing parent
            is not a writable folder.
    """
    if path.is_dir():
        raise UserError(f"{what} {path}: cannot open it (it is a folder)")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise UserError(f"{what} {path}: cannot open it (not writable)")
        return
    parent = next(p for p in path.absolute().parents if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path}: cannot create it ({parent} is not a writable folder)")
