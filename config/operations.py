"""Running the service: the ledger file (``[ledger]``) and the operator surface
(``[service]``: HTTP endpoints, logs, backups)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from config.section import Section


class LedgerSettings(Section):
    """The SQLite paper ledger (``state/``): where it lives and how it is written."""

    db_path: Path = Field(Path("shadow.sqlite"),
                          description="ledger file; relative paths start in the working directory")
    lock_timeout_s: float = Field(
        5.0, gt=0, le=600, description="seconds to wait for another writer's lock before failing with a clear error"
    )
    synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL",
        description="SQLite synchronous level: NORMAL survives a crashed process (replays are idempotent); "
        "FULL also fsyncs every commit against power loss",
    )


_LISTEN = re.compile(r"^(?:(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):)?(?P<port>\d{1,5})$")
LOOPBACK = "127.0.0.1"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or a bare ``PORT`` (on the loopback address) as ``(host, port)``.

    Raises:
        ValueError: anything else, or a port above 65535.
    """
    match = _LISTEN.match(value.strip())
    if not match or int(match["port"]) > 65_535:
        raise ValueError("expected HOST:PORT or PORT (e.g. 127.0.0.1:9108), with a port from 0 to 65535")
    return (match["host"] or LOOPBACK).strip("[]"), int(match["port"])


class ServiceSettings(Section):
    """Running ``shadow run`` as a service: its HTTP endpoints, the health rule, logs and backups."""

    http: str = Field(
        "", description="serve the dashboard, /health, /metrics and /status on HOST:PORT (a bare PORT listens on "
        "127.0.0.1); empty: no HTTP server"
    )
    http_public: bool = Field(
        False, description="allow an http address other machines can reach (not 127.0.0.1, ::1 or localhost); "
        "the dashboard and the ledger become readable to them"
    )
    health_max_age_intervals: float = Field(
        2.0, ge=1, le=100,
        description="/health fails when a symbol's newest candle closed more than this many candle intervals "
        "(plus health_margin_s) ago",
    )
    health_margin_s: float = Field(
        30.0, ge=0, le=3600,
        description="seconds added to that age: the exchange's push delay and the local clock's offset from the "
                    "exchange's",
    )
    min_free_disk_mb: float = Field(
        200.0, ge=0, description="/health and `shadow doctor` fail when the ledger's disk has less free space than this"
    )
    log_format: Literal["text", "json", "journal"] = Field(
        "text", description="log lines: text (human-readable), json (one JSON object per line) or journal "
        "(systemd priority prefixes, no timestamp: journald adds its own)"
    )
    log_file: Path | None = Field(
        None, description="also write the log to this file, rotated by size; unset: stderr only")
    log_max_mb: float = Field(50.0, gt=0, description="rotate log_file when it reaches this size")
    log_backups: int = Field(5, ge=1, le=1000, description="rotated log files kept beside log_file")
    backup_dir: Path = Field(Path("backups"), description="where `shadow backup` writes when --out is not given")

    @field_validator("http")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        if value.strip():
            parse_listen(value)
        return value.strip()
