"""The shared command line (``config.cli``): options bound to settings, their help, where
a bad value is said to come from, and the one-line error ending."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from bot.cli import app as shadow
from config.cli import (
    EXIT_USER_ERROR,
    BackendOption,
    ConfigOption,
    command_settings,
    run_app,
    setting_option,
)
from config.errors import UserError
from config.settings import ComputeSettings, EnvSettings, EvaluationSettings, TrainSettings, TuneSettings
from tests.conftest import REPO

probe = typer.Typer()


@probe.command()
def show(
    ctx: typer.Context,
    config: ConfigOption = None,
    n_envs: Annotated[int | None, setting_option("train.n_envs")] = None,
    trials: Annotated[int | None, setting_option("tune.n_trials", "--trials")] = None,
    backend: BackendOption = None,
) -> None:
    """Print three settings as the command sees them."""
    s = command_settings(ctx)
    typer.echo(f"{s.train.n_envs} {s.tune.n_trials} {s.compute.backend}")


@probe.command()
def fail(long: bool = False) -> None:
    """Fail the way a command fails on bad input."""
    raise UserError("a message " * (40 if long else 1) + "\n  that a library broke over two lines")


def _show(*args: str, env: dict[str, str] | None = None) -> typer.testing.Result:
    return CliRunner().invoke(probe, ["show", *args], env=env)


def test_a_flag_beats_a_variable_which_beats_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text("[train]\nn_envs = 2\n[tune]\nn_trials = 7\n")
    assert _show("--config", str(toml)).output.split() == ["2", "7", "local"]
    assert _show("--config", str(toml), env={"SHADOW_TRAIN__N_ENVS": "3"}).output.split() == ["3", "7", "local"]
    both = _show("--config", str(toml), "--n-envs", "5", "--trials", "9", env={"SHADOW_TRAIN__N_ENVS": "3"})
    assert both.output.split() == ["5", "9", "local"]


@pytest.mark.parametrize(
    ("args", "env", "toml", "source"),
    [
        (["--n-envs", "0"], {}, "[train]\nn_envs = 2\n", "(set by --n-envs)"),  # not the file beside it
        (["--trials", "0"], {}, "", "(set by --trials)"),  # the flag's own name, not the field's
        ([], {"SHADOW_TRAIN__N_ENVS": "0"}, "[train]\nn_envs = 2\n", "(set by SHADOW_TRAIN__N_ENVS)"),
        ([], {}, "[train]\nn_envs = 0\n", "([train] n_envs in "),
    ],
)
def test_a_bad_value_is_blamed_on_its_true_source(tmp_path: Path, args: list[str], env: dict[str, str], toml: str,
                                                  source: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(toml)
    result = _show("--config", str(path), *args, env=env)
    assert isinstance(result.exception, UserError)
    message = str(result.exception)
    assert source in message and "\n" not in message and message.startswith("invalid value for ")


def test_help_shows_the_defaults_of_the_settings() -> None:
    """No default is typed twice: the help reads it from the settings field."""
    expected = {
        ("train", "--n-envs"): TrainSettings.model_fields["n_envs"].default,
        ("train", "--total-timesteps"): TrainSettings.model_fields["total_timesteps"].default,
        ("train", "--initial-balance"): EnvSettings.model_fields["initial_balance"].default,
        ("train", "--backend"): ComputeSettings.model_fields["backend"].default,
        ("tune", "--trials"): TuneSettings.model_fields["n_trials"].default,
        ("tune", "--timesteps"): TuneSettings.model_fields["timesteps"].default,
        ("evaluate", "--test-candles"): EvaluationSettings.model_fields["test_candles"].default,
    }
    for (command, flag), default in expected.items():
        text = " ".join(CliRunner().invoke(shadow, [command, "--help"]).output.replace("│", " ").split())
        described = re.search(rf"{flag} .*?\(default: ([^)]+)\)", text)
        assert described and described.group(1) == str(default), (command, flag, described and described.group(0))


def test_no_command_types_a_settings_default_by_hand() -> None:
    """A number typed as a default (the settings' are numbers: "(default: 20)") goes stale
    the day the setting changes; options bound to a setting show the setting's."""
    sources = [*sorted((REPO / "bot" / "commands").glob("*.py")), REPO / "trainer" / "cli.py"]
    typed = [(path.name, m.group(0)) for path in sources
             for m in re.finditer(r"\(default: \d[\d_]*(\.\d+)?\)", path.read_text())]
    assert typed == []


def test_run_app_ends_a_usage_mistake_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        run_app(probe, ["show", "--n-envz", "3"], prog_name="probe")
    assert done.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err == "error: probe show: no such option: --n-envz (Possible options: --n-envs) (see probe show --help)\n"


def test_run_app_never_wraps_a_long_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        run_app(probe, ["fail", "--long"], prog_name="probe")
    err = capsys.readouterr().err
    assert done.value.code == EXIT_USER_ERROR and err.count("\n") == 1 and len(err) > 400
    assert err.endswith("a message that a library broke over two lines\n")


def test_a_bare_command_group_shows_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        run_app(shadow, [], prog_name="shadow")
    assert done.value.code == 0 and "Usage: shadow" in capsys.readouterr().out
