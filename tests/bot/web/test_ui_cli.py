"""``shadow ui`` as a process: a port in use is one line and status 2; ``--http-public``
serves on every interface. (Its other user errors, and ``shadow run``'s non-loopback
address, are cases in tests/test_user_errors.py.)"""

from __future__ import annotations

import os
import signal
import socket
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


def test_a_port_in_use_is_one_line(sample_ledger: tuple[Path, SampleSpan]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _one_line_error(_shadow("ui", "--db", str(sample_ledger[0]), "--http", f"127.0.0.1:{port}"),
                        f"--http 127.0.0.1:{port}: cannot listen (the port is in use)")


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
