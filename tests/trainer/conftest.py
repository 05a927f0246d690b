"""Fixtures of the trainer tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from workdir import working_dir


@pytest.fixture()
def in_tmp(tmp_path: Path) -> Iterator[Path]:
    """Run in an empty working directory (the seed's outputs are relative to it)."""
    with working_dir(tmp_path):
        yield tmp_path
