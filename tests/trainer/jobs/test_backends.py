"""Backends and the job runner: failures stay local to their job, ordered mode hands
outcomes over in job order, the board records what happened."""

from __future__ import annotations

import os
import sys

import pytest
from job_fakes import crash, fail, pid, square_after

from config.settings import ComputeSettings
from trainer.jobs.backends import BackendError, LocalBackend, default_workers, make_backend
from trainer.jobs.board import Board
from trainer.jobs.runner import Job, JobOutcome, run_jobs


@pytest.fixture(scope="module")
def local() -> LocalBackend:
    backend = LocalBackend(2)
    yield backend
    backend.close()


def test_a_failing_or_crashing_job_fails_alone(local: LocalBackend) -> None:
    jobs = [Job("a", square_after, (3,)), Job("b", fail, (7,)), Job("c", crash, (0,)), Job("d", square_after, (5,))]
    seen: dict[str, JobOutcome] = {}
    count = run_jobs(local, lambda i: jobs[i] if i < len(jobs) else None, lambda i, o: seen.__setitem__(o.key, o))
    assert count == 4
    assert seen["a"].result == 9 and seen["d"].result == 25
    assert not seen["b"].ok and "ValueError: bad input 7" in seen["b"].error
    assert not seen["c"].ok and "exited with code 3" in seen["c"].error


def test_every_job_runs_in_its_own_process(local: LocalBackend) -> None:
    pids = []
    run_jobs(local, lambda i: Job(str(i), pid, (i,)) if i < 4 else None, lambda i, o: pids.append(o.result))
    assert len(set(pids)) == 4 and os.getpid() not in pids


def recording(delays: list[float], events: list[str]):
    """Job ``i`` squares ``i`` after ``delays[i]`` s; making it is logged in ``events``."""

    def make(i: int) -> Job | None:
        if i >= len(delays):
            return None
        events.append(f"make {i}")
        return Job(str(i), square_after, (i, delays[i]))

    return make


def test_ordered_mode_hands_outcomes_over_in_job_order(local: LocalBackend) -> None:
    """Job 0 is the slowest; job 2 may only be made once job 0's outcome was handled."""
    events: list[str] = []
    run_jobs(local, recording([0.6, 0.0, 0.0, 0.0], events), lambda i, o: events.append(f"finish {i}"), ordered=True)
    assert events == ["make 0", "make 1", "finish 0", "make 2", "finish 1", "make 3", "finish 2", "finish 3"]


def test_ordered_window_can_exceed_the_workers(local: LocalBackend) -> None:
    events: list[str] = []
    run_jobs(local, recording([0.3] * 4, events), lambda i, o: events.append(f"finish {i}"), ordered=True, window=3)
    assert events[:4] == ["make 0", "make 1", "make 2", "finish 0"]


def test_unordered_mode_starts_the_next_job_as_soon_as_one_ends(local: LocalBackend) -> None:
    events: list[str] = []
    run_jobs(local, recording([0.6, 0.0, 0.0], events), lambda i, o: events.append(f"finish {i}"))
    assert events.index("make 2") < events.index("finish 0")


def test_board_records_outcomes_and_best() -> None:
    ticks = iter([0.0, 2.0, 5.0, 6.0, 9.0, 10.0, 11.0])
    board = Board("t", clock=lambda: next(ticks))
    board.add("x")
    board.start("a")
    board.start("b")
    board.finish("a", "done", 0.5)
    board.finish("b", "failed", detail="boom")
    board.start("c")
    board.finish("c", "done", 0.7)
    assert board.counts() == {"done": 2, "failed": 1, "queued": 1}
    assert board.best().key == "c" and board.rows["a"].elapsed_s == 5.0 and board.rows["b"].detail == "boom"
    assert board.__rich__().row_count == 4


def test_backend_choice_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = make_backend(ComputeSettings(), torch_threads=1)
    assert backend.name == "local" and backend.workers == default_workers(1) >= 1
    with pytest.raises(BackendError, match="--workers 0: must be at least 1"):
        LocalBackend(0)
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(BackendError, match=r"pip install 'shadow-trader\[ray\]'"):
        make_backend(ComputeSettings(backend="ray"), torch_threads=1)
