"""Run many independent jobs on a backend, a fixed number at a time, and record each outcome.

A job that raises, or whose process dies, becomes a failed :class:`JobOutcome`; the other
jobs go on. In ``ordered`` mode, outcomes are handed over in job order and job ``i + w`` (``w`` =
the window, by default the backend's workers) is created only after the outcome of job
``i`` was handled: a tuning study then asks for each trial knowing exactly the same
finished trials, however the backend schedules them, so with the same window every
backend and worker count gives the same trials. The price is idle time: a worker that
finishes early waits for the oldest running job.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

from trainer.jobs.backends import Backend

ERROR_CHARS = 4000
"""Longest error text kept per job (a remote traceback can be long)."""


@dataclass(frozen=True)
class Job:
    """``fn(*args)`` to run on a worker, known to the progress table as ``key``."""

    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]


@dataclass(frozen=True)
class JobOutcome:
    """The job's return value, or why it failed."""

    key: str
    result: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def error_line(self) -> str:
        """The error's last line (the exception itself), for a one-line report; empty when ok."""
        return self.error.strip().splitlines()[-1] if self.error is not None else ""


def run_jobs(
    backend: Backend,
    make_job: Callable[[int], Job | None],
    on_finish: Callable[[int, JobOutcome], None],
    *,
    on_start: Callable[[int, Job], None] = lambda index, job: None,
    ordered: bool = False,
    window: int | None = None,
) -> int:
    """Keep ``window`` (default ``backend.workers``) jobs submitted until ``make_job`` returns
    None; returns how many ran.

    Args:
        make_job: builds job ``i`` (called lazily, so it may use earlier outcomes).
        on_finish: called once per job with its outcome (in job order when ``ordered``).
        on_start: called as each job is submitted.
        ordered: deterministic mode (see the module docstring).
        window: jobs submitted at once; in ordered mode it fixes which outcomes job ``i``
            may depend on (those of jobs up to ``i - window``), whatever the backend's size.
    """
    running: dict[Future[Any], tuple[int, Job]] = {}
    finished: dict[int, JobOutcome] = {}
    next_index = next_to_hand = 0
    exhausted = False

    def start_next() -> None:
        nonlocal next_index, exhausted
        job = None if exhausted else make_job(next_index)
        if job is None:
            exhausted = True
            return
        on_start(next_index, job)
        running[backend.submit(job.fn, *job.args)] = (next_index, job)
        next_index += 1

    for _ in range(window or backend.workers):
        start_next()
    while running:
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in sorted(done, key=lambda f: running[f][0]):
            index, job = running.pop(future)
            outcome = _outcome(job, future)
            if ordered:
                finished[index] = outcome
            else:
                on_finish(index, outcome)
                start_next()
        while ordered and next_to_hand in finished:
            on_finish(next_to_hand, finished.pop(next_to_hand))
            next_to_hand += 1
            start_next()
    return next_index


def _outcome(job: Job, future: Future[Any]) -> JobOutcome:
    error = future.exception()
    if error is None:
        return JobOutcome(job.key, future.result())
    text = str(error).strip() or type(error).__name__
    return JobOutcome(job.key, error=text[-ERROR_CHARS:])
