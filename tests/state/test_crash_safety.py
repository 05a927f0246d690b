"""SIGKILL a writing process at random moments: the ledger must always open, pass
``PRAGMA integrity_check`` and hold only whole decisions; each restart resumes from the
ledger, and the final ledger must equal an uninterrupted run to the last bit."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from state.replay import replay_decisions

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from crash_writer import SEED, candles, new_portfolio  # noqa: E402

N_CANDLES = 10_000
KILLS = 25


def _start(path: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, str(HERE / "crash_writer.py"), str(path), str(N_CANDLES)],
        stdout=subprocess.PIPE, text=True, cwd=HERE.parents[1],
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def _check_whole(path: Path, expected: list[tuple[int, int, float]]) -> int:
    """Assert the ledger holds a prefix of the expected decisions, each one whole."""
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = conn.execute(
            "SELECT d.open_time_ms, (SELECT count(*) FROM fills f WHERE f.decision_id = d.decision_id), e.equity "
            "FROM decisions d LEFT JOIN equity e USING (decision_id) ORDER BY d.open_time_ms"
        ).fetchall()
        assert rows == expected[: len(rows)]  # every decision with all its fills and its equity row
        n_trades = conn.execute("SELECT count(*) FROM trades").fetchone()[0]
        position = conn.execute("SELECT open_time_ms, n_trades FROM positions").fetchall()
    if rows:
        assert position == [(rows[-1][0], n_trades)]
    return len(rows)


def test_sigkill_at_random_moments_never_leaves_a_partial_decision(tmp_path):
    path = tmp_path / "crash.sqlite"
    expected = [(r.candle.open_time_ms, len(r.fills), p.equity)
                for r, p in replay_decisions(candles(N_CANDLES), seed=SEED, portfolio=new_portfolio())]
    rng = random.Random(20240301)
    progress = []
    for _ in range(KILLS):
        child = _start(path)
        time.sleep(rng.uniform(0.0, 0.12))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        progress.append(_check_whole(path, expected))
    assert progress == sorted(progress)
    mid_stream = {n for n in progress if 0 < n < N_CANDLES}
    assert len(mid_stream) > KILLS // 2, f"most kills should land mid-stream: {progress}"

    child = _start(path)  # the last restart runs to the end
    assert child.wait(timeout=120) == 0
    assert _check_whole(path, expected) == N_CANDLES
