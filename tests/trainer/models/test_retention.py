"""Retention: the newest N non-promoted files stay, the promoted model and its parent always
stay, and nothing outside the registry folder is ever deleted."""

from __future__ import annotations

from pathlib import Path

from state.ledger import Ledger
from state.records import ModelEntry
from strategies.model_metadata import metadata_path
from trainer.models.retention import files_to_prune, prune_registry


def _model(folder: Path, n: int, status: str, parent: str | None = None) -> ModelEntry:
    path = folder / f"v{n:04d}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"zip")
    metadata_path(path).write_text("{}")
    return ModelEntry(version=f"v{n:04d}", path=str(path), sha256="0" * 64, created_ms=n, parent_version=parent,
                      status=status, symbol="BTCUSDT", interval="1m")


def test_keeps_the_newest_non_promoted_files_and_protects_promoted_parents_candidates(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    models = [
        _model(registry, 1, "retired"),
        _model(registry, 2, "retired"),  # parent of the promoted v0005: the rollback target
        _model(registry, 3, "rejected"),
        _model(registry, 4, "rejected"),
        _model(registry, 5, "promoted", parent="v0002"),
        _model(registry, 6, "rejected"),
        _model(registry, 7, "candidate"),  # still being judged
        _model(tmp_path / "elsewhere", 8, "rejected"),  # not the registry's file
    ]
    pruned = files_to_prune(models, keep=2, registry_dir=registry)
    assert [m.version for m in pruned] == ["v0003", "v0001"]  # v0006 and v0004 are the 2 newest kept
    assert files_to_prune(models, keep=0, registry_dir=registry)[0].version == "v0006"
    assert {m.version for m in files_to_prune(models, keep=0, registry_dir=registry)} == {
        "v0001", "v0003", "v0004", "v0006"}


async def test_prune_registry_deletes_zip_and_metadata_and_keeps_the_rows(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    async with await Ledger.open(tmp_path / "l.sqlite") as ledger:
        for entry in (_model(registry, 1, "rejected"), _model(registry, 2, "rejected"),
                      _model(registry, 3, "promoted")):
            await ledger.registry.add_model(entry)
        assert await prune_registry(ledger, registry, keep=1) == ["v0001"]
        assert len(await ledger.registry.list_models()) == 3
    assert sorted(p.name for p in registry.iterdir()) == ["v0002.meta.json", "v0002.zip", "v0003.meta.json",
                                                          "v0003.zip"]
