"""The model registry: versioned model files beside their ``models`` rows in the ledger.

Publishing is atomic in the order that makes a crash harmless: copy the zip, its metadata
and its exported policy (``.policy.npz``, :mod:`strategies.policy`) into the registry folder
under temporary names, fsync, rename into place, fsync the folder, and only then insert the
row. A crash before the row leaves an unreferenced file (never served); a row always points
at complete files whose sha256s it records. The daemon verifies both before loading
anything (a model zip is a pickle), and serves the exported policy without torch.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from config.errors import UserError
from state.clock import SYSTEM_CLOCK, Clock
from state.ledger import Ledger
from state.records import ModelEntry, ModelStatus
from strategies.base import Strategy
from strategies.model_metadata import check_compatible, file_sha256, load_metadata, metadata_path
from strategies.policy import policy_path
from strategies.specs import build_strategy

FILE_VERSION_PREFIX = "sha256:"
"""Starts the model version recorded for a model file served outside the registry."""


class ModelIntegrityError(UserError):
    """A registry model whose file is missing or does not match its recorded sha256."""


def file_version(path: Path) -> str:
    """The model version a decision records for a model file served from a ``ppo:PATH`` spec
    rather than the registry: ``sha256:`` and the first 12 hex digits of its sha256."""
    return FILE_VERSION_PREFIX + file_sha256(path)[:12]


def verify_model_file(entry: ModelEntry, lookback_window: int | None = None) -> Path:
    """Check a registry model before anything reads it: the file (and its exported policy,
    when one was published) exists, each sha256 is the one recorded when it was published,
    and its metadata fits this code's features (and ``lookback_window``, when given).
    Returns the zip's path.

    Raises:
        ModelIntegrityError: a file is missing or changed after it was published.
        ModelMismatchError: its metadata is missing or built for other features.
    """
    path = Path(entry.path)
    files = [(path, entry.sha256)] + ([(policy_path(path), entry.policy_sha256)] if entry.policy_sha256 else [])
    for file, recorded in files:
        if not file.is_file():
            raise ModelIntegrityError(f"model {entry.version}: file {file} is missing")
        actual = file_sha256(file)
        if actual != recorded:
            raise ModelIntegrityError(
                f"model {entry.version}: {file} has sha256 {actual[:16]}…, the registry recorded {recorded[:16]}…; "
                "refusing to load a file that changed after it was published"
            )
    check_compatible(load_metadata(path), path, lookback_window)
    return path


def load_registry_strategy(entry: ModelEntry, lookback_window: int) -> Strategy:
    """The registry model as a strategy, loaded only after :func:`verify_model_file` passed.

    Raises:
        ModelIntegrityError: the file is missing or its sha256 differs from the registry's.
        ModelMismatchError: its metadata does not fit this code (feature spec, lookback).
    """
    path = verify_model_file(entry, lookback_window)
    return build_strategy(f"ppo:{path}", lookback_window=lookback_window)


def promoted_model(models: Sequence[ModelEntry], symbol: str, interval: str) -> ModelEntry | None:
    """The newest promoted model for ``symbol``/``interval``; a per-symbol model wins over a
    shared one (a row without symbol or interval)."""
    matching = [m for m in models if m.status == ModelStatus.PROMOTED
                and m.symbol in (symbol, None) and m.interval in (interval, None)]
    matching.sort(key=lambda m: (m.symbol is not None, m.promoted_ms or 0, m.created_ms), reverse=True)
    return matching[0] if matching else None


async def next_version(ledger: Ledger) -> str:
    """``v0001``, ``v0002``, ...: one sequence for the whole registry."""
    numbers = [int(m.version[1:]) for m in await ledger.registry.list_models()
               if m.version.startswith("v") and m.version[1:].isdigit()]
    return f"v{max(numbers, default=0) + 1:04d}"


async def publish_model(
    ledger: Ledger,
    registry_dir: Path,
    model_zip: Path,
    *,
    symbol: str | None,
    interval: str | None,
    status: ModelStatus = ModelStatus.CANDIDATE,
    parent_version: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    version: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> ModelEntry:
    """Copy ``model_zip`` (with its ``.meta.json`` and, when it was exported, its
    ``.policy.npz``) into the registry and register it.

    Args:
        ledger: the ledger holding the ``models`` table.
        registry_dir: where versioned files live (``<dir>/<version>.zip``).
        model_zip: a model saved by Shadow's trainer (its metadata must be beside it).
        symbol / interval: the market it serves; ``None`` for a shared model.
        status: ``candidate`` (default) or ``promoted`` to serve it at once.
        parent_version: the model it was warm-started from or replaces.
        metrics: holdout metrics to keep with it.
        version: explicit version; default :func:`next_version`.
        clock: the time ``created_ms`` (and ``promoted_ms``) are stamped with; the daemon's
            clock when a retrain in the daemon publishes.
    """
    meta = load_metadata(model_zip)  # refuses files without Shadow metadata
    status = ModelStatus(status)
    version = version or await next_version(ledger)
    # File work (copy, fsync, hash) in a thread: the daemon publishes from its event loop.
    target, sha256, policy_sha256 = await asyncio.to_thread(_copy_into_registry, model_zip, registry_dir, version)
    now_ms = clock.now_ms()
    entry = ModelEntry(
        version=version, path=str(target.resolve()), sha256=sha256, created_ms=now_ms,
        parent_version=parent_version, status=ModelStatus.CANDIDATE, symbol=symbol, interval=interval,
        data_start_ms=meta.data_range.get("start_ms"), data_end_ms=meta.data_range.get("end_ms"),
        hyperparameters=dict(meta.hyperparameters), metrics=dict(metrics or {}), policy_sha256=policy_sha256,
    )
    await ledger.registry.add_model(entry)
    if status != ModelStatus.CANDIDATE:
        await ledger.registry.set_model_status(version, status, at_ms=now_ms)
        entry = replace(entry, status=status, promoted_ms=now_ms if status == ModelStatus.PROMOTED else None)
    return entry


def _copy_into_registry(model_zip: Path, registry_dir: Path, version: str) -> tuple[Path, str, str | None]:
    """``<registry_dir>/<version>.zip``, its metadata and its exported policy (if any),
    written atomically; returns the target, its sha256 and the export's."""
    registry_dir.mkdir(parents=True, exist_ok=True)
    target = registry_dir / f"{version}.zip"
    _atomic_copy(metadata_path(model_zip), metadata_path(target))
    policy_sha256 = None
    if policy_path(model_zip).is_file():
        _atomic_copy(policy_path(model_zip), policy_path(target))
        policy_sha256 = file_sha256(policy_path(target))
    _atomic_copy(model_zip, target)
    return target, file_sha256(target), policy_sha256


def _atomic_copy(source: Path, target: Path) -> None:
    """Copy to ``target`` so that ``target`` is either absent or complete, even after a crash."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with source.open("rb") as src, tmp.open("wb") as dst:
        shutil.copyfileobj(src, dst)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
