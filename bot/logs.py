"""Log set-up for the service: one line per event on stderr, journald- and docker-friendly."""

from __future__ import annotations

import logging
import sys

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Plain text lines with UTC-free local timestamps (journald and docker add their own)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "websockets", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
