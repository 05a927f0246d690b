"""Helpers for tests that start servers as processes on 127.0.0.1: a free port, a GET that
never raises, and a poll that waits for a server to answer instead of sleeping a guess."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request


def free_port() -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    """``(status, body)`` of a GET; ``(0, b"")`` when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def wait_until_answering(url: str, timeout_s: float = 10.0) -> None:
    """Poll ``url`` until it answers 200 (a server started in another process is listening).

    Raises:
        TimeoutError: nothing answered within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while get(url)[0] != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s:g} s")
        time.sleep(0.05)
