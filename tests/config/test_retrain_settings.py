"""``[retrain]``: defaults, and invalid values named with field, value and source."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings


def test_defaults_are_off_and_judge_by_sharpe() -> None:
    retrain = load_settings().retrain
    assert (retrain.enabled, retrain.metric, retrain.margin, retrain.warm_start, retrain.shared_model) == (
        False, "sharpe", 0.0, False, False)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("cron = 'every day'", "invalid value for retrain.cron: 'every day' ([retrain] cron in"),
        ("interval_minutes = 60\ncron = '0 * * * *'", "give either interval_minutes or cron, not both"),
        ("metric = 'profit'", "invalid value for retrain.metric: 'profit'"),
        ("margin = -0.5", "invalid value for retrain.margin: -0.5"),
        ("holdout_fraction = 1.5", "invalid value for retrain.holdout_fraction: 1.5"),
        ("min_train_candles = 500\nmax_train_candles = 100", "must be at least min_train_candles (500)"),
        ("memory_limit_mb = 100", "invalid value for retrain.memory_limit_mb: 100"),
        ("every_candles = 0", "invalid value for retrain.every_candles: 0"),
        ("retrain_every = 5", "unknown setting 'retrain.retrain_every'"),
    ],
)
def test_invalid_values_name_field_value_and_file(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "shadow.toml"
    path.write_text(f"[retrain]\n{toml}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert message in str(caught.value)


def test_environment_variables_set_it_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOW_RETRAIN__CRON", "0 */6 * * *")
    monkeypatch.setenv("SHADOW_RETRAIN__ENABLED", "true")
    retrain = load_settings().retrain
    assert (retrain.enabled, retrain.cron) == (True, "0 */6 * * *")
