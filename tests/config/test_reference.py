"""The configuration reference generator: every setting as a valid table row, and ``--write``
updating a file in place between its markers (tests/test_docs.py checks the README itself)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import get_args, get_origin

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from config.reference import BEGIN_MARKER, END_MARKER, ReferenceMarkersError, reference_markdown, with_reference
from config.settings import Settings
from tests.conftest import REPO


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, FieldInfo, str | None]]:
    """Every setting: its dotted name, its field, and the row's first cell when it is a key of
    an array of tables (``[[accounts]]`` ``name``: no variable of its own)."""
    found: list[tuple[str, FieldInfo, str | None]] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        entry = get_args(annotation)[0] if get_origin(annotation) is tuple else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _fields(annotation, f"{prefix}{name}.")
        elif isinstance(entry, type) and issubclass(entry, BaseModel):
            found.append((prefix + name, info, None))
            found += [(f"{prefix}{name}.{key}", field, f"`[[{name}]]` `{key}`")
                      for key, field in entry.model_fields.items()]
        else:
            found.append((prefix + name, info, None))
    return found


def test_every_setting_has_a_row_with_its_env_var_and_a_description() -> None:
    table = reference_markdown()
    rows = table.splitlines()[3:-1]
    fields = _fields(Settings)
    assert len(rows) == len(fields)
    for (dotted, info, entry_key), row in zip(fields, rows, strict=True):
        assert info.description, f"{dotted} has no description"
        env_var = "SHADOW_" + dotted.upper().replace(".", "__")
        assert row.startswith(f"| {entry_key} |") if entry_key else f"`{env_var}`" in row
        # a table row has exactly 5 cells: an unescaped | in a type or description would add one
        assert len(row.replace("\\|", "").split("|")) == 7, row


def test_write_replaces_only_the_text_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{BEGIN_MARKER}\nstale table\n{END_MARKER}\nafter\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "config.reference", "--write", str(readme)], cwd=REPO,
                            capture_output=True, text=True, check=True)
    assert "updated" in result.stdout
    assert readme.read_text(encoding="utf-8") == f"# Title\n\nbefore\n{reference_markdown()}\nafter\n"


@pytest.mark.parametrize("text", ["no markers at all\n", f"{END_MARKER}\n{BEGIN_MARKER}\n",
                                  f"{BEGIN_MARKER}\n{END_MARKER}\n{BEGIN_MARKER}\n{END_MARKER}\n"],
                         ids=["missing", "reversed", "twice"])
def test_missing_or_broken_markers_say_how_to_fix(tmp_path: Path, text: str) -> None:
    with pytest.raises(ReferenceMarkersError, match="needs exactly one pair of marker lines"):
        with_reference(text, "README.md")
    readme = tmp_path / "README.md"
    readme.write_text(text, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "config.reference", "--write", str(readme)], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 2 and BEGIN_MARKER in result.stderr and "Traceback" not in result.stderr
    assert readme.read_text(encoding="utf-8") == text  # left alone


def test_a_default_the_default_profile_replaces_shows_both_values() -> None:
    rows = {row.split(" | ")[0].lstrip("| "): row for row in reference_markdown().splitlines()[3:-1]}
    assert "| `2048`; profile default: `256` |" in rows["`[train]` `n_steps`"]
    assert '| `"seed"`; profile default: `"net"` |' in rows["`[env.reward]` `mode`"]
    assert "profile default" not in rows["`[env]` `commission`"]
    assert rows["`profile` (top level)"].startswith('| `profile` (top level) | "default" \\| "seed" | `"default"` |')
