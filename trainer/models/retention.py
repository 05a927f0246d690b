"""Retention of model files: the registry folder keeps what a rollback may need.

Kept, always: every promoted model and the parent of each (the model it replaced, the
natural rollback target), and models still being judged (``candidate``). Of the other
files (rejected and retired models), the ``keep`` newest stay; older ones are deleted.
Their ``models`` rows stay as history; promoting a pruned version fails with "file
missing". Only files inside the registry folder are ever deleted: a model registered
from elsewhere (``shadow demo``'s folder, a user's file) is never touched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from state.ledger import Ledger
from state.records import ModelEntry, ModelStatus
from strategies.model_metadata import metadata_path
from strategies.policy import policy_path

log = logging.getLogger(__name__)


def files_to_prune(models: Sequence[ModelEntry], keep: int, registry_dir: Path) -> list[ModelEntry]:
    """The models whose files go (see the module docstring), oldest last."""
    promoted = [m for m in models if m.status == ModelStatus.PROMOTED]
    protected = {m.version for m in promoted} | {m.parent_version for m in promoted if m.parent_version}
    folder = registry_dir.resolve()
    prunable = [m for m in models if m.status != ModelStatus.CANDIDATE and m.version not in protected
                and Path(m.path).resolve().parent == folder and Path(m.path).exists()]
    prunable.sort(key=lambda m: (m.created_ms, m.version), reverse=True)
    return prunable[keep:]


async def prune_registry(ledger: Ledger, registry_dir: Path, keep: int) -> list[str]:
    """Delete the files :func:`files_to_prune` picks; returns their versions."""
    doomed = files_to_prune(await ledger.registry.list_models(), keep, registry_dir)
    if doomed:
        await asyncio.to_thread(_delete, [Path(m.path) for m in doomed])
        log.info("registry %s: deleted the files of %s (retrain.keep_models = %d)", registry_dir,
                 ", ".join(m.version for m in doomed), keep)
    return [m.version for m in doomed]


def _delete(paths: list[Path]) -> None:
    for path in paths:
        metadata_path(path).unlink(missing_ok=True)
        policy_path(path).unlink(missing_ok=True)
        path.unlink(missing_ok=True)
