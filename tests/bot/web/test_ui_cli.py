"""``shadow ui`` and ``shadow run --http`` as processes: a ledger that cannot be served, a
port in use, an address other machines can reach without ``--http-public``: one line each,
status 2, nothing created; with the flag it serves."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from state.sample_ledger import SampleSpan
from tests.conftest import REPO


def _shadow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env=os.environ | {"COLUMNS": "1000"})


def _one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def test_a_ledger_that_cannot_be_served_is_one_line(tmp_path: Path) -> None:
    _one_line_error(_shadow("ui", "--db", str(tmp_path / "missing.sqlite"), "--http", "0"),
                    "missing.sqlite: no such file")
    assert not (tmp_path / "missing.sqlite").exists()
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database at all, just text " * 100)
    _one_line_error(_shadow("ui", "--db", str(text), "--http", "0"), "notes.sqlite: not a usable SQLite database")
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    _one_line_error(_shadow("ui", "--db", str(newer), "--http", "0"), "schema version 99 is newer")
    _one_line_error(_shadow("ui", "--db", str(newer), "--http", "localhost:http"), "--http 'localhost:http'")


def test_a_port_in_use_is_one_line(sample_ledger: tuple[Path, SampleSpan]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _one_line_error(_shadow("ui", "--db", str(sample_ledger[0]), "--http", f"127.0.0.1:{port}"),
                        f"--http 127.0.0.1:{port}: cannot listen (the port is in use)")


@pytest.mark.parametrize(("command", "address"), [("ui", "0.0.0.0:0"), ("ui", "[::]:0"), ("run", "example.org:9108")])
def test_another_machines_address_needs_http_public(tmp_path: Path, sample_ledger: tuple[Path, SampleSpan],
                                                   command: str, address: str) -> None:
    db = sample_ledger[0] if command == "ui" else tmp_path / "l.sqlite"
    _one_line_error(_shadow(command, "--db", str(db), "--http", address), "not a loopback address", "--http-public")
    assert command == "ui" or not db.exists()  # the daemon refused before opening its ledger


def test_http_public_serves_on_every_interface(sample_ledger: tuple[Path, SampleSpan]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "bot", "ui", "--db", str(sample_ledger[0]), "--http",
                                f"0.0.0.0:{port}", "--http-public"], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/markets", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"shadow ui never answered: {process.stderr.read() if process.poll() is not None else ''}")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert f"at http://0.0.0.0:{port}/" in out and "reachable from other machines" in err
