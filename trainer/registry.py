"""The model registry: versioned model files beside their ``models`` rows in the ledger.

Publishing is atomic in the order that makes a crash harmless: copy the zip and its
metadata into the registry folder under temporary names, fsync, rename into place, fsync
the folder, and only then insert the row. A crash before the row leaves an unreferenced
file (never served); a row always points at a complete file whose sha256 it records. The
daemon verifies that sha256 before loading anything (a model zip is a pickle).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from state.ledger import Ledger
from state.records import ModelEntry
from strategies.model_metadata import load_metadata, metadata_path


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    status: str = "candidate",
    parent_version: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    version: str | None = None,
) -> ModelEntry:
    """Copy ``model_zip`` (and its ``.meta.json``) into the registry and register it.

    Args:
        ledger: the ledger holding the ``models`` table.
        registry_dir: where versioned files live (``<dir>/<version>.zip``).
        model_zip: a model saved by Shadow's trainer (its metadata must be beside it).
        symbol / interval: the market it serves; ``None`` for a shared model.
        status: ``candidate`` (default) or ``promoted`` to serve it at once.
        parent_version: the model it was warm-started from or replaces.
        metrics: holdout metrics to keep with it.
        version: explicit version; default :func:`next_version`.
    """
    meta = load_metadata(model_zip)  # refuses files without Shadow metadata
    version = version or await next_version(ledger)
    registry_dir.mkdir(parents=True, exist_ok=True)
    target = registry_dir / f"{version}.zip"
    _atomic_copy(metadata_path(model_zip), metadata_path(target))
    _atomic_copy(model_zip, target)
    now_ms = time.time_ns() // 1_000_000
    entry = ModelEntry(
        version=version, path=str(target.resolve()), sha256=file_sha256(target), created_ms=now_ms,
        parent_version=parent_version, status="candidate", symbol=symbol, interval=interval,
        data_start_ms=meta.data_range.get("start_ms"), data_end_ms=meta.data_range.get("end_ms"),
        hyperparameters=dict(meta.hyperparameters), metrics=dict(metrics or {}),
    )
    await ledger.registry.add_model(entry)
    if status != "candidate":
        await ledger.registry.set_model_status(version, status, at_ms=now_ms)
    return entry


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
