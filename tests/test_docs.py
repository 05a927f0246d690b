"""The README stays true to the code: its config table, its commands, its CI command."""

from __future__ import annotations

import re

from config.reference import BEGIN_MARKER, END_MARKER, reference_markdown
from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_config_reference_is_generated_from_the_settings_model() -> None:
    start, end = README.index(BEGIN_MARKER), README.index(END_MARKER) + len(END_MARKER)
    assert README[start:end] == reference_markdown(), "run `python -m config.reference` and paste it into README.md"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    quick_start = README[README.index("## Quick start"):README.index("## Live use")]
    commands = re.findall(r"```bash\n(.*?)\n```", quick_start, flags=re.S)
    assert commands[0].endswith("shadow demo")  # one command installs and runs the main job
    test_command = commands[1].strip()
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_ci_runs_the_readme_static_gates_before_the_tests() -> None:
    development = README[README.index("## Development"):]
    commands = re.search(r"```bash\n(.*?)\n```", development, flags=re.S)
    assert commands is not None
    gates = [line.split("#")[0].strip() for line in commands.group(1).splitlines() if line.startswith(("ruff", "mypy"))]
    assert gates == ["ruff check .", "mypy"]
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert all(gate in ci_lines for gate in gates)
    assert max(ci_lines.index(gate) for gate in gates) < ci_lines.index("python -m pytest -q")


def test_every_cli_command_is_in_the_readme() -> None:
    from typer.main import get_command

    from bot.cli import app

    commands = get_command(app).commands  # type: ignore[attr-defined]
    missing = [name for name in commands if f"`shadow {name}" not in README]
    assert not missing, f"README's command table lacks: {missing}"
