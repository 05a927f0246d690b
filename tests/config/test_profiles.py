"""Profiles: the seed profile is exactly the seed's setup, the default profile the one that
converges; a profile sits under every explicit value, and shadow config says where each
value came from; an unknown profile is one clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, load_settings
from config.profiles import PROFILE_NAMES, PROFILES
from config.settings import EnvSettings, Settings, TrainSettings, value_sources
from tests.conftest import REPO


def test_the_seed_profile_is_every_seed_default() -> None:
    seed = load_settings(profile="seed")
    assert seed.train == TrainSettings() and seed.env == EnvSettings()  # the field defaults are the seed's
    assert (seed.train.n_steps, seed.train.batch_size, seed.train.n_envs, seed.train.learning_rate) == (
        2048, 64, 4, 3e-4)
    assert (seed.env.action_mode, seed.env.decision_stride, seed.env.reward.mode) == ("trade", 1, "seed")
    assert (seed.env.reward.inactivity, seed.env.reward.fee_multiplier) == (0.1, 1.0)


def test_the_default_profile_is_the_converging_setup() -> None:
    settings = load_settings()
    assert settings.profile == "default" and Settings().profile == "default"
    assert (settings.train.n_steps, settings.train.batch_size) == (256, 256)
    env = settings.env
    assert (env.action_mode, env.reward.mode, env.reward.inactivity, env.reward.fee_multiplier) == (
        "target", "net", 0.0, 2.0)
    assert settings.env.commission == 0.0004 and settings.train.n_envs == 4  # the rest are the seed's


def test_explicit_values_beat_the_profile_from_every_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "shadow.toml"
    path.write_text('[env]\naction_mode = "long_flat"\n[env.reward]\nmode = "seed"\n')
    monkeypatch.setenv("SHADOW_TRAIN__BATCH_SIZE", "128")
    settings = load_settings(path, train={"n_steps": 512})
    assert (settings.env.action_mode, settings.env.reward.mode) == ("long_flat", "seed")  # file
    assert (settings.train.batch_size, settings.train.n_steps) == (128, 512)  # variable, command line
    assert settings.env.reward.inactivity == 0.0  # still the profile's
    sources = value_sources(path, train={"n_steps": 512})
    assert sources["env.action_mode"] == f"[env] action_mode in {path}"
    assert sources["train.batch_size"] == "set by SHADOW_TRAIN__BATCH_SIZE"
    assert sources["train.n_steps"] == "passed in code" and sources["env.reward.inactivity"] == "profile default"
    assert sources["env.commission"] == "the default" and sources["profile"] == "the default"
    named = value_sources(path, flag_names={"train.n_steps": "--n-steps"}, train={"n_steps": 512})
    assert named["train.n_steps"] == "set by --n-steps"


def test_the_profile_is_chosen_by_file_variable_or_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "shadow.toml"
    path.write_text('profile = "seed"\n')
    assert load_settings(path).train.n_steps == 2048 and value_sources(path)["train.n_steps"] == "the default"
    monkeypatch.setenv("SHADOW_PROFILE", "default")
    assert load_settings(path).train.n_steps == 256  # the variable beats the file
    assert load_settings(path, profile="seed").train.batch_size == 64  # the flag beats both


def test_every_profile_value_is_a_valid_setting() -> None:
    assert set(PROFILES) == set(PROFILE_NAMES)
    for name in PROFILES:
        load_settings(profile=name)


def test_an_unknown_profile_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"invalid value for profile: 'fast'.*'default' or 'seed'"):
        load_settings(profile="fast")


def test_shadow_config_shows_where_each_value_came_from(tmp_path: Path) -> None:
    path = tmp_path / "shadow.toml"
    path.write_text("[train]\nn_epochs = 5\n")
    result = subprocess.run([sys.executable, "-m", "bot", "config", "--config", str(path)], cwd=REPO,
                            capture_output=True, text=True, env=os.environ | {"SHADOW_TRAIN__SEED": "7"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "profile = 'default'  # the default" in lines
    assert f"n_epochs = 5  # [train] n_epochs in {path}" in lines and "seed = 7  # set by SHADOW_TRAIN__SEED" in lines
    assert "n_steps = 256  # profile default" in lines and "reward.mode = 'net'  # profile default" in lines
    assert "commission = 0.0004  # the default" in lines


def test_shadow_config_shows_each_account_as_a_table(tmp_path: Path) -> None:
    path = tmp_path / "shadow.toml"
    path.write_text('[[accounts]]\nname = "a"\n[[accounts]]\nname = "b"\nstrategy = "flat"\ninitial_balance = 50\n')
    result = subprocess.run([sys.executable, "-m", "bot", "config", "--config", str(path)], cwd=REPO,
                            capture_output=True, text=True, env=os.environ | {"COLUMNS": "1000"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines.count(f"[[accounts]]  # [[accounts]] in {path}") == 2
    assert "name = 'b'" in lines and "strategy = 'flat'" in lines and "initial_balance = 50.0" in lines
    plain = subprocess.run([sys.executable, "-m", "bot", "config"], cwd=REPO, capture_output=True, text=True)
    assert "accounts = []  # the default" in plain.stdout.splitlines()
