"""Shadow's one typed settings object.

Sources, highest priority first: values passed in code (CLI flags), ``SHADOW_*``
environment variables (nested with ``__``: ``SHADOW_ENV__COMMISSION=0.00055``), a TOML
file (``--config shadow.toml`` or ``SHADOW_CONFIG``), the chosen profile's values
(:mod:`config.profiles`: ``profile = "seed"``, ``SHADOW_PROFILE``, ``--profile``), then the
defaults below. :func:`load_settings` turns every invalid value into a :class:`ConfigError`
that names the field, the value and where it came from; :func:`value_sources` tells where
every value came from.

The sections live in :mod:`config.market`, :mod:`config.trading`, :mod:`config.training` and
:mod:`config.operations`; they are re-exported here, so ``from config.settings import X``
works for every section.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from config.accounts import AccountSettings, check_accounts
from config.alerts import ALERT_KINDS, AlertSettings
from config.errors import UserError, clause
from config.market import TIMEFRAMES, ExchangeSettings, FeedSettings, Timeframe
from config.operations import LOOPBACK, LedgerSettings, ServiceSettings, parse_listen
from config.profiles import DEFAULT_PROFILE, Profile, profile_values
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
    "ALERT_KINDS", "CONFIG_PATH_VARIABLE", "ENV_NESTED_DELIMITER", "ENV_PREFIX", "LOOPBACK", "TIMEFRAMES",
    "AccountSettings", "AlertSettings", "ComputeSettings", "ConfigError", "DaemonSettings", "EnvSettings",
    "EvaluationSettings", "ExchangeSettings", "FeedSettings", "LedgerSettings", "RetrainSettings", "RewardSettings",
    "RiskSettings", "SearchSpaceSettings", "ServiceSettings", "Settings", "Timeframe", "TrainSettings", "TuneSettings",
    "load_settings", "parse_listen", "value_sources",
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

    profile: Profile = Field(
        DEFAULT_PROFILE, description="named bundle of defaults under everything set explicitly: default (the "
        "learning setup that converges) or seed (exactly the seed's: 4 actions, five-part reward, n_steps 2048, "
        "batch 64)")
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
    alerts: AlertSettings = AlertSettings()
    accounts: Annotated[tuple[AccountSettings, ...], Field(
        description="paper accounts trading side by side ([[accounts]] tables; none: one account, 'main', "
        "trading [daemon] strategy with [env] and [risk])",
    )] = ()

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, value: tuple[AccountSettings, ...], info: ValidationInfo) -> tuple[AccountSettings, ...]:
        feed = info.data.get("feed")
        if feed is not None:  # an invalid [feed] is reported on its own
            check_accounts(value, feed.symbols)
        return value

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
        return (*sources, ProfileSettingsSource(settings_cls))


class ProfileSettingsSource(PydanticBaseSettingsSource):
    """The chosen profile's values (:mod:`config.profiles`), below every explicit source: it
    reads the profile name from what the sources before it gathered."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole overlay

    def __call__(self) -> dict[str, Any]:
        return profile_values(str(self.current_state.get("profile", DEFAULT_PROFILE)))


def load_settings(
    config_file: str | Path | None = None, *, flag_names: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Build and validate the settings.

    Args:
        config_file: a TOML file; defaults to ``$SHADOW_CONFIG`` when set.
        flag_names: the command-line flag behind each override, by dotted field
            (``{"train.n_envs": "--n-envs"}``), so an invalid value names the flag that gave it.
        overrides: section dictionaries from the CLI, e.g. ``env={"commission": 0.001}``.

    Raises:
        ConfigError: a missing or malformed file, an unknown key, or an invalid value; the
            message is one line naming each field, its value and the source that set it.
    """
    path, tables = _config(config_file)
    token = _config_file.set(path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        sources = _Sources(overrides, flag_names or {}, tables, path, {})
        raise ConfigError("; ".join(_describe(error, sources) for error in exc.errors())) from None
    finally:
        _config_file.reset(token)


def value_sources(config_file: str | Path | None = None, *, flag_names: Mapping[str, str] | None = None,
                  **overrides: Any) -> dict[str, str]:
    """Where each value of ``load_settings(config_file, **overrides)`` came from, by dotted
    name (``"train.n_steps"``): ``"set by --n-steps"``, ``"set by SHADOW_TRAIN__N_STEPS"``,
    ``"[train] n_steps in shadow.toml"``, ``"profile default"`` or ``"the default"``."""
    settings = load_settings(config_file, flag_names=flag_names, **overrides)
    path, tables = _config(config_file)
    sources = _Sources(overrides, flag_names or {}, tables, path, profile_values(settings.profile), settings.profile)
    return {name: sources.name(name.split(".")) for name in _leaf_names(Settings, ())}


def _config(config_file: str | Path | None) -> tuple[Path | None, dict[str, Any]]:
    """The TOML file to read (``config_file`` or ``$SHADOW_CONFIG``) and its tables."""
    config_file = config_file or os.environ.get(CONFIG_PATH_VARIABLE) or None
    path = Path(config_file) if config_file else None
    return path, _read_toml(path) if path is not None else {}


def _leaf_names(model: type[BaseModel], path: tuple[str, ...]) -> list[str]:
    """Dotted names of every setting (not of the sections holding them)."""
    names = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _leaf_names(annotation, (*path, name))
        else:
            names.append(".".join((*path, name)))
    return names


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path}: not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None


@dataclass(frozen=True)
class _Sources:
    """Where each setting's value came from, in the order that wins: flags, ``SHADOW_*``
    variables, the TOML file, the profile (``profile``: its overlay); anything else is a default."""

    overrides: Mapping[str, Any]
    flag_names: Mapping[str, str]
    tables: Mapping[str, Any]
    path: Path | None
    profile: Mapping[str, Any]
    profile_name: str = DEFAULT_PROFILE

    def name(self, loc: Sequence[str]) -> str:
        """The source of the value at ``loc`` (``("train", "n_envs")``; a list item's
        source, and its fields', is its list's: ``("accounts", "0", "name")``)."""
        field = list(loc)
        index = next((i for i, part in enumerate(field) if part.isdigit()), len(field))
        field = field[:max(index, 1)]
        dotted = ".".join(field)
        if _holds(self.overrides, field):
            return f"set by {self.flag_names[dotted]}" if dotted in self.flag_names else "passed in code"
        variable = ENV_PREFIX + ENV_NESTED_DELIMITER.join(part.upper() for part in field)
        if variable in {key.upper() for key in os.environ}:
            return f"set by {variable}"
        if _holds(self.tables, field):
            table = f"[{'.'.join(field[:-1])}] {field[-1]}" if len(field) > 1 else (
                f"[[{field[0]}]]" if isinstance(self.tables[field[0]], list) else field[0])
            return f"{table} in {self.path}"
        if _holds(self.profile, field):
            return f"profile {self.profile_name}"
        return "the default"


def _holds(tree: Mapping[str, Any], path: Sequence[str]) -> bool:
    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return True


MAX_SHOWN_VALUE = 80
"""Characters of a bad value an error shows: a whole list of ``[[accounts]]`` would drown the reason."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_VALUE else text[:MAX_SHOWN_VALUE - 3] + "..."


def _describe(error: ErrorDetails, sources: _Sources) -> str:
    """``invalid value for env.commission: -1 (set by SHADOW_ENV__COMMISSION): input should be ...``"""
    loc = [str(part) for part in error["loc"]]
    field = ".".join(loc)
    where = sources.name(loc)
    if error["type"] == "extra_forbidden":
        return f"unknown setting {field!r} ({where})"
    message = clause(error["msg"].removeprefix("Value error, "))
    return f"invalid value for {field}: {_shown(error.get('input'))} ({where}): {message}"
