"""Settings: defaults, TOML file, SHADOW_* variables, and errors that name field, value and source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, load_settings
from tests.conftest import REPO


def test_defaults_match_the_seed() -> None:
    env = load_settings().env
    assert (env.initial_balance, env.commission, env.max_position_size, env.lookback_window, env.reward_scaling) == (
        100.0, 0.0004, 1.0, 20, 1e-4)


def test_priority_cli_over_env_var_over_file_over_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "shadow.toml"
    path.write_text("[env]\ncommission = 0.001\nlookback_window = 30\nslippage_bps = 2\n")
    monkeypatch.setenv("SHADOW_ENV__LOOKBACK_WINDOW", "40")
    settings = load_settings(path, env={"slippage_bps": 5})
    assert settings.env.commission == 0.001  # file
    assert settings.env.lookback_window == 40  # env var beats file
    assert settings.env.slippage_bps == 5  # code/CLI beats both
    assert settings.env.initial_balance == 100.0  # default


def test_config_file_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[env.reward]\nmax_loss = 0.3\n")
    monkeypatch.setenv("SHADOW_CONFIG", str(path))
    assert load_settings().env.reward.max_loss == 0.3


def test_invalid_file_value_names_field_value_and_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[env]\ncommission = -1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert "env.commission" in message and "-1" in message and str(path) in message


def test_invalid_env_var_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOW_ENV__LOOKBACK_WINDOW", "twenty")
    with pytest.raises(ConfigError, match=r"env.lookback_window: 'twenty' \(set by SHADOW_ENV__LOOKBACK_WINDOW\)"):
        load_settings()


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("[env]\ncomission = 0.001\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'env\.comission'"):
        load_settings(path)


@pytest.mark.parametrize(("content", "message"), [("[env\n", "not valid TOML"), (None, "not found")])
def test_unreadable_file(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "c.toml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_ws_url_scheme_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"exchange\.ws_url: 'https://x'.*ws://"):
        load_settings(exchange={"ws_url": "https://x"})


def test_cli_prints_a_clear_error_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[risk]\nmax_drawdown = 7\n")
    result = subprocess.run([sys.executable, "-m", "bot", "config", "--config", str(path)], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "risk.max_drawdown: 7" in result.stderr
    assert "Traceback" not in result.stderr
