"""Shadow's one typed settings object.

Sources, highest priority first: values passed in code (CLI flags), ``SHADOW_*``
environment variables (nested with ``__``: ``SHADOW_ENV__COMMISSION=0.00055``), a TOML
file (``--config shadow.toml`` or ``SHADOW_CONFIG``), then the defaults below.
:func:`load_settings` turns every invalid value into a :class:`ConfigError` that names
the field, the value and where it came from.

The sections live in :mod:`config.market`, :mod:`config.trading`, :mod:`config.training` and
:mod:`config.operations`; they are re-exported here, so ``from config.settings import X``
works for every section.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from config.errors import UserError
from config.market import FEED_INTERVALS, TIMEFRAMES, ExchangeSettings, FeedSettings, Timeframe
from config.operations import LOOPBACK, LedgerSettings, ServiceSettings, parse_listen
from config.trading import DaemonSettings, EnvSettings, RewardSettings, RiskSettings
from config.training import (
    ComputeSettings,
    EvaluationSettings,
    RetrainSettings,
    SearchSpaceSettings,
    TrainSettings,
    TuneSettings,
)

__all__ = [
    "CONFIG_PATH_VARIABLE", "ENV_NESTED_DELIMITER", "ENV_PREFIX", "FEED_INTERVALS", "LOOPBACK", "TIMEFRAMES",
    "ComputeSettings", "ConfigError", "DaemonSettings", "EnvSettings", "EvaluationSettings", "ExchangeSettings",
    "FeedSettings", "LedgerSettings", "RetrainSettings", "RewardSettings", "RiskSettings", "SearchSpaceSettings",
    "ServiceSettings", "Settings", "Timeframe", "TrainSettings", "TuneSettings", "load_settings", "parse_listen",
]

ENV_PREFIX = "SHADOW_"
ENV_NESTED_DELIMITER = "__"
CONFIG_PATH_VARIABLE = "SHADOW_CONFIG"

_config_file: ContextVar[Path | None] = ContextVar("_config_file", default=None)


class ConfigError(UserError, ValueError):
    """Settings that cannot be used; the message names field, value and source."""


class Settings(BaseSettings):
    """Every setting of Shadow. Sections map to TOML tables (``[env]``, ``[exchange]``...)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER, extra="forbid", frozen=True,
        validate_default=True,
    )

    env: EnvSettings = EnvSettings()
    exchange: ExchangeSettings = ExchangeSettings()
    feed: FeedSettings = FeedSettings()
    train: TrainSettings = TrainSettings()
    risk: RiskSettings = RiskSettings()
    ledger: LedgerSettings = LedgerSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    daemon: DaemonSettings = DaemonSettings()
    compute: ComputeSettings = ComputeSettings()
    tune: TuneSettings = TuneSettings()
    service: ServiceSettings = ServiceSettings()
    retrain: RetrainSettings = RetrainSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        path = _config_file.get()
        if path is not None:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=path),)
        return sources


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build and validate the settings.

    Args:
        config_file: a TOML file; defaults to ``$SHADOW_CONFIG`` when set.
        overrides: section dictionaries from the CLI, e.g. ``env={"commission": 0.001}``.

    Raises:
        ConfigError: a missing or malformed file, an unknown key, or an invalid value.
    """
    path = Path(config_file) if config_file else (Path(os.environ[CONFIG_PATH_VARIABLE]) if os.environ.get(CONFIG_PATH_VARIABLE) else None)
    if path is not None:
        _check_toml(path)
    token = _config_file.set(path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    finally:
        _config_file.reset(token)


def _check_toml(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"config file {path}: not found")
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None


def _describe(exc: ValidationError, path: Path | None) -> str:
    """One line per problem: ``env.commission = -1 (SHADOW_ENV__COMMISSION or [env] commission in x.toml): ...``"""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        field = ".".join(loc)
        env_var = ENV_PREFIX + ENV_NESTED_DELIMITER.join(part.upper() for part in loc)
        table = f"[{'.'.join(loc[:-1])}] {loc[-1]}" if len(loc) > 1 else loc[0]
        where = f"set by {env_var}" if env_var in os.environ else (f"{table} in {path}" if path else "")
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            lines.append(f"unknown setting {field!r}" + (f" ({where})" if where else ""))
            continue
        value = error.get("input")
        lines.append(f"invalid value for {field}: {value!r}" + (f" ({where})" if where else "") + f": {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
