"""A training job's files and log, carried from the worker back to the driver.

A job of ``shadow train --symbols`` runs where the backend puts it: a local process or a
Ray worker on another machine. So it writes into a scratch folder, packs that folder as
one gzip tar (:func:`pack`), and the driver writes each file where ``shadow train`` would
have written it (:func:`unpack`). What the job logged travels back the same way: the
worker collects its log records (:func:`captured_log`) and the driver hands them to its
own handlers (:func:`replay_log`), so ``ppo_training.log`` has the worker's lines, with
their own times, exactly as a single-symbol run has them.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import queue
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from config.settings import Settings

PARTS = ("save", "logs", "test")
"""Top folders of a worker's archive: save_path, log_dir, the test slice's folder."""


@dataclass(frozen=True)
class JobFiles:
    """What a job sends back besides its numbers: its scratch folder packed, and its log."""

    archive: bytes
    log: list[logging.LogRecord]
    scratch_root: str

    def deliver(self, targets: Mapping[str, Path]) -> None:
        """On the driver: write the files (:func:`unpack`) and the log (:func:`replay_log`),
        whose paths are changed from the worker's scratch folders to where the files are now."""
        unpack(self.archive, targets)
        moves = {str(Path(self.scratch_root) / part): str(target) for part, target in targets.items()}
        for record in self.log:
            for before, after in moves.items():
                record.msg = record.msg.replace(before, after)
        replay_log(self.log)


@dataclass(frozen=True)
class Scratch:
    """A worker's scratch folder (``root``) with its log being collected."""

    root: Path
    collected_log: Callable[[], list[logging.LogRecord]]

    def settings(self, settings: Settings) -> Settings:
        """``settings`` with every output under ``root``, in the layout :data:`PARTS` names."""
        args = settings.train
        return settings.model_copy(update={"train": args.model_copy(update={
            "save_path": self.root / "save", "log_dir": self.root / "logs",
            "test_data_path": self.root / "test" / args.test_data_path.name,
        })})

    def files(self) -> JobFiles:
        """The folder packed and the log so far, to return to the driver."""
        return JobFiles(pack({part: self.root / part for part in PARTS}), self.collected_log(), str(self.root))


@contextmanager
def scratch() -> Iterator[Scratch]:
    """A temporary scratch folder, deleted afterwards, and the process's log captured meanwhile."""
    with tempfile.TemporaryDirectory(prefix="shadow-job-") as folder, captured_log() as collected:
        yield Scratch(Path(folder), collected)


def output_targets(settings: Settings) -> dict[str, Path]:
    """Where each archive part goes on the driver: where ``shadow train`` writes it."""
    args = settings.train
    return {"save": args.save_path, "logs": args.log_dir, "test": args.test_data_path.parent}


def pack(entries: Mapping[str, Path]) -> bytes:
    """A gzip tar of the files and folders that exist among ``entries`` (archive name -> path)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, path in entries.items():
            if path.exists():
                archive.add(path, arcname=name)
    return buffer.getvalue()


def unpack(archive: bytes, targets: Mapping[str, Path]) -> None:
    """Write each file of ``archive`` under the target of its top folder (files of other
    folders, links and anything else are ignored)."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            part, _, rest = member.name.partition("/")
            if part not in targets or not rest or not member.isfile():
                continue
            destination = targets[part] / rest
            destination.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is not None:
                destination.write_bytes(source.read())


@contextmanager
def captured_log(level: int = logging.INFO) -> Iterator[Callable[[], list[logging.LogRecord]]]:
    """Collect the log records of ``level`` and above that this process emits inside the
    block, made picklable (message formatted, no exception object). The block gets a
    function returning the records collected so far."""
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = logging.handlers.QueueHandler(records)
    handler.setLevel(level)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    if previous_level > level:
        root.setLevel(level)

    def collected() -> list[logging.LogRecord]:
        found = []
        while not records.empty():
            found.append(records.get())
        return found

    try:
        yield collected
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


def replay_log(records: Sequence[logging.LogRecord]) -> None:
    """Pass a worker's records to this process's handlers (its ``ppo_training.log`` and console)."""
    for record in records:
        logging.getLogger(record.name).handle(record)
