"""Job functions for backend tests: importable by the worker processes (module level)."""

from __future__ import annotations

import os
import time


def square_after(x: int, delay_s: float = 0.0) -> int:
    time.sleep(delay_s)
    return x * x


def fail(x: int) -> int:
    raise ValueError(f"bad input {x}")


def crash(x: int) -> int:
    os._exit(3)


def pid(_: int) -> int:
    return os.getpid()
