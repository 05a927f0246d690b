"""What every saved model carries: the contract between a model file and the code serving it.

A model zip ``X.zip`` has its metadata beside it in ``X.meta.json``. The PPO strategy
refuses to load a model whose feature spec, lookback window or observation size do not
match the running code (:func:`check_compatible`), because a model fed a differently
built observation acts on garbage without any error.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from config.errors import UserError
from env.decisions import ActionMode, DecisionCadence
from env.features import FEATURE_SPEC_VERSION, feature_spec
from env.intervals import grid
from env.observation import observation_size

METADATA_SUFFIX = ".meta.json"
SHARED_SEPARATOR = ","
"""Joins the markets of a model trained on several (``symbol`` "BTC/USDT:USDT,ETH/USDT:USDT")."""
_PACKAGES = ("shadow-trader", "stable-baselines3", "torch", "gymnasium", "numpy", "pandas")


class ModelMismatchError(UserError):
    """A model file that cannot be served by this code (missing, or built for other features)."""


@dataclass
class ModelMetadata:
    """Provenance and serving contract of one model.

    Args:
        feature_spec: :func:`env.features.feature_spec` at training time.
        lookback_window: candles per observation.
        observation_size: length of the observation vector.
        env: the env/portfolio parameters it was trained with (``EnvSettings`` dump).
        symbol / timeframe: the market it was trained on; a shared model (one model for several
            markets) lists them joined by :data:`SHARED_SEPARATOR`.
        data_range: ``{"start_ms", "end_ms", "n_candles"}`` of the training candles.
        hyperparameters: PPO settings (learning rate, batch size, ...).
        seed: the training seed.
        num_timesteps: environment steps the model has been trained for.
        versions: package versions at training time.
        created_at: ISO-8601 UTC time of saving.
        extra: anything else worth keeping (split boundaries, parent model, ...).
        action_mode: what the policy's actions mean (:class:`env.decisions.ActionMode`);
            models saved before action modes existed are ``trade``.
        decision_stride: the policy decides every this many candles of ``timeframe`` and
            holds in between (:class:`env.decisions.DecisionCadence`).
        diagnostics: convergence figures on the validation slice
            (:class:`trainer.training.diagnostics.ConvergenceDiagnostics`), when it had one.
        funding: trained with perpetual funding charged (every training frame had a
            ``funding_rate`` column, :mod:`env.funding`); ``False`` for spot candles and for
            models saved before funding existed. Served on a linear market, a model trained
            without it is allowed with a warning.
    """

    feature_spec: dict[str, Any]
    lookback_window: int
    observation_size: int
    env: dict[str, Any]
    symbol: str
    timeframe: str
    data_range: dict[str, int]
    hyperparameters: dict[str, Any]
    seed: int | None
    num_timesteps: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    action_mode: str = ActionMode.TRADE.value
    decision_stride: int = 1
    diagnostics: dict[str, Any] = field(default_factory=dict)
    funding: bool = False

    @classmethod
    def for_current_code(cls, *, lookback_window: int, **fields: Any) -> ModelMetadata:
        """Metadata stamped with this code's feature spec, package versions and time."""
        return cls(
            feature_spec=feature_spec(),
            lookback_window=lookback_window,
            observation_size=observation_size(lookback_window),
            versions=package_versions(),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            **fields,
        )

    @property
    def mode(self) -> ActionMode:
        """:attr:`action_mode` as the enum (checked by :func:`check_compatible`)."""
        return ActionMode(self.action_mode)

    def cadence(self) -> DecisionCadence:
        """The candles the policy decides on: every ``decision_stride``-th of ``timeframe``."""
        if self.decision_stride == 1:
            return DecisionCadence()
        return DecisionCadence(self.decision_stride, grid(self.timeframe))

    def market_ids(self) -> list[str]:
        """Bybit ids of the markets it was trained on (``["BTCUSDT", "ETHUSDT"]``)."""
        return [market_id(symbol) for symbol in self.symbol.split(SHARED_SEPARATOR)]

    @property
    def shared(self) -> bool:
        """Trained on several markets: the registry serves it for any market (symbol NULL)."""
        return len(self.market_ids()) > 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    def save_beside(self, model_zip: str | Path) -> Path:
        """Write ``<model>.meta.json`` next to the zip; returns its path."""
        path = metadata_path(model_zip)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path


def market_id(symbol: str) -> str:
    """Bybit's symbol id of a ccxt symbol (``BTC/USDT:USDT`` -> ``BTCUSDT``); an id stays as it is."""
    return symbol.split(":")[0].replace("/", "")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (model files are verified by it before loading)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def metadata_path(model_zip: str | Path) -> Path:
    """``models/x/best_model.zip`` -> ``models/x/best_model.meta.json``."""
    model_zip = Path(model_zip)
    stem = model_zip.name[: -len(".zip")] if model_zip.name.endswith(".zip") else model_zip.name
    return model_zip.with_name(stem + METADATA_SUFFIX)


def load_metadata(model_zip: str | Path) -> ModelMetadata:
    """Read the metadata beside ``model_zip``.

    Raises:
        ModelMismatchError: no metadata file, or one that is not valid.
    """
    path = metadata_path(model_zip)
    if not path.is_file():
        raise ModelMismatchError(f"{model_zip}: no model metadata ({path.name} is missing); "
                                 "Shadow only serves models saved by its trainer")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ModelMetadata(**raw)
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
        raise ModelMismatchError(f"{path}: unreadable model metadata ({exc})") from None


def check_compatible(meta: ModelMetadata, source: str | Path, lookback_window: int | None = None) -> None:
    """Raise :class:`ModelMismatchError` unless this code builds the model's observation and
    serves its action mode and cadence.

    Args:
        meta: the model's metadata.
        source: the model file, for the message.
        lookback_window: the lookback the caller will use, when it is fixed by config.
    """
    current = feature_spec()
    if meta.feature_spec != current:
        theirs = meta.feature_spec.get("version")
        raise ModelMismatchError(
            f"{source}: built for feature spec version {theirs} {meta.feature_spec.get('names')}, "
            f"but this code computes version {FEATURE_SPEC_VERSION} {current['names']}; retrain the model"
        )
    if lookback_window is not None and lookback_window != meta.lookback_window:
        raise ModelMismatchError(
            f"{source}: trained with lookback_window={meta.lookback_window}, configured {lookback_window}"
        )
    if meta.observation_size != observation_size(meta.lookback_window):
        raise ModelMismatchError(
            f"{source}: observation size {meta.observation_size} != {observation_size(meta.lookback_window)} "
            f"for lookback_window={meta.lookback_window}"
        )
    if meta.action_mode not in set(ActionMode):
        raise ModelMismatchError(f"{source}: action mode {meta.action_mode!r} is unknown to this Shadow "
                                 f"(it serves {', '.join(ActionMode)})")
    try:
        meta.cadence()
    except ValueError as exc:
        raise ModelMismatchError(f"{source}: decision_stride {meta.decision_stride!r} on {meta.timeframe!r} "
                                 f"candles cannot be served ({exc})") from None


def load_servable_metadata(model_zip: Path, lookback_window: int | None = None) -> ModelMetadata:
    """The metadata of a model file this code can serve: what both served forms (SB3 and the
    numpy export) check before they load anything.

    Raises:
        ModelMismatchError: no such model file, or metadata :func:`load_metadata` or
            :func:`check_compatible` refuses.
    """
    if not model_zip.is_file():
        raise ModelMismatchError(f"{model_zip}: no such model file")
    metadata = load_metadata(model_zip)
    check_compatible(metadata, model_zip, lookback_window)
    return metadata


def check_servable(meta: ModelMetadata, source: str | Path, *, category: str, interval: str) -> None:
    """Raise :class:`ModelMismatchError` unless a daemon streaming ``interval`` candles of a
    ``category`` market can trade the model as it was trained: on its own candle interval
    (its features and decision stride are counted in its candles), and without short
    positions on a spot market.

    Args:
        meta: the model's metadata.
        source: the model file, for the message.
        category: ``[exchange] category`` (``spot`` or ``linear``).
        interval: ``[feed] interval`` (``1m``).
    """
    if meta.timeframe != interval:
        raise ModelMismatchError(f"{source}: trained on {meta.timeframe} candles, but the daemon streams {interval} "
                                 f"([feed] interval); serve it with interval = \"{meta.timeframe}\"")
    if category == "spot" and meta.mode.can_short:
        raise ModelMismatchError(f"{source}: its {meta.action_mode} actions can hold a short position, which a spot "
                                 "market cannot; serve a long_flat model ([env] action_mode = \"long_flat\") or "
                                 "use category = \"linear\"")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
