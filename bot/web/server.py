"""``shadow ui``: the dashboard for any ledger file, without a daemon.

The same pages and API as ``shadow run --http`` (:mod:`bot.web.app`), over read-only
connections: a backup, a copy from another machine, or the file a running daemon writes
(WAL lets both read while it commits). Health is judged from the ledger alone: is a
session running, and are the newest candles recent by the ``/health`` rule.
"""

from __future__ import annotations

import logging
import time
from contextlib import AsyncExitStack, closing
from pathlib import Path
from types import TracebackType

from bot.web.app import serve_dashboard
from bot.web.listen import check_public, url_host
from config.settings import ServiceSettings
from state.database import connect_reader

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:9109"
"""Where ``shadow ui`` listens unless told (beside a daemon's usual 9108)."""


def _wall_ms() -> int:
    return int(time.time() * 1000)


class LedgerDashboard:
    """``async with LedgerDashboard(db, host, port) as ui:`` serves ``ui.url`` until exit.

    Args:
        db: the ledger file; checked before anything listens (missing, not SQLite, or
            another schema version: :class:`state.errors.LedgerError`).
        host, port: where to listen (port 0: any free one).
        allow_public: listen on an address other machines can reach.
        service: ``[service]`` settings (the health rule).
        lock_timeout_s: how long a read waits for a lock.
    """

    def __init__(self, db: Path, host: str, port: int, *, allow_public: bool = False,
                 service: ServiceSettings | None = None, lock_timeout_s: float = 5.0) -> None:
        self.db = db
        self.host, self.port = host, port
        self.allow_public = allow_public
        self.service = service or ServiceSettings()
        self.lock_timeout_s = lock_timeout_s
        self._stack = AsyncExitStack()

    @property
    def url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"

    async def __aenter__(self) -> LedgerDashboard:
        check_public(self.host, self.port, allow_public=self.allow_public)
        with closing(connect_reader(self.db, self.lock_timeout_s)):
            pass  # a ledger this code can read, or one line saying why not
        async with AsyncExitStack() as stack:
            self.port = await serve_dashboard(stack, self.db, self.host, self.port, lock_timeout_s=self.lock_timeout_s,
                                              now_ms=_wall_ms, service=self.service)
            self._stack = stack.pop_all()
        log.info("dashboard of %s at %s/", self.db, self.url)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stack.aclose()
