"""The service's read-only HTTP endpoints, served in the daemon's own event loop (aiohttp).

======================  ============================================================
``GET /health``         200 ``{"status": "ok", ...}`` or 503 with every reason
                        (:mod:`bot.health`); for Docker's HEALTHCHECK, load balancers
                        and uptime checks
``GET /metrics``        Prometheus exposition (:mod:`bot.metrics`)
``GET /status``         the ``shadow status --json`` document, read from the ledger
``GET /``               the list of endpoints
======================  ============================================================

Nothing here can change anything: there are only GET routes, and the ledger is opened
read-only. Off unless ``--http`` / ``[service] http`` is set, and a bare port listens
on the loopback address only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from contextlib import closing
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.health import HealthMonitor
from bot.metrics import DaemonMetrics
from config.errors import UserError
from config.settings import ServiceSettings, parse_listen
from state.database import connect_reader
from state.errors import LedgerError
from state.readers import status_document

if TYPE_CHECKING:
    from bot.daemon import Daemon

log = logging.getLogger(__name__)

ENDPOINTS = {"/health": "200 when healthy, 503 with the reasons otherwise",
             "/metrics": "Prometheus metrics",
             "/status": "the `shadow status --json` document"}


class HttpListenError(UserError):
    """The HTTP address cannot be listened on (in use, not local, no permission)."""


class ServiceApi:
    """``async with ServiceApi(daemon, settings.service):`` serves the endpoints until exit.

    Create it before ``daemon.run()``: ``/health`` answers 503 ``starting`` during the
    warm-up, and the metrics' latency histogram sees every decision.

    Args:
        daemon: the daemon to report on.
        service: ``[service]`` settings: ``http`` (where to listen) and the health rule.
    """

    def __init__(self, daemon: Daemon, service: ServiceSettings) -> None:
        self.daemon = daemon
        self.host, self.port = parse_listen(service.http)
        self.health = HealthMonitor(daemon, service)
        self.metrics = DaemonMetrics(daemon)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> ServiceApi:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise HttpListenError(f"--http {self.host}:{self.port}: cannot listen ({exc.strerror or exc}); "
                                  "choose another address or port") from None
        self.port = self._runner.addresses[0][1]  # the real port when 0 asked for any
        log.info("HTTP: %s/health, /metrics and /status", self.url)
        if not _is_loopback(self.host):
            log.warning("HTTP endpoints listen on %s: reachable from other machines. They are read-only, but "
                        "keep them behind a firewall (or listen on 127.0.0.1)", self.host)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _index(self, request: web.Request) -> web.Response:
        return web.json_response({"service": "shadow", "endpoints": ENDPOINTS})

    async def _health(self, request: web.Request) -> web.Response:
        verdict = await self.health.check()
        return web.json_response(verdict.as_dict(), status=200 if verdict.ok else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = await self.metrics.render(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _status(self, request: web.Request) -> web.Response:
        try:
            document = await asyncio.to_thread(self._read_status)
        except LedgerError as exc:
            return web.json_response({"error": str(exc)}, status=503)
        return web.json_response(document)

    def _read_status(self) -> dict[str, Any]:
        ledger = self.daemon.settings.ledger
        with closing(connect_reader(ledger.db_path, ledger.lock_timeout_s)) as conn:
            return status_document(conn, self.daemon.clock.now_ms())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False
