"""The service's read-only HTTP endpoints, served in the daemon's own event loop (aiohttp).

======================  ============================================================
``GET /health``         200 ``{"status": "ok", ...}`` or 503 with every reason
                        (:mod:`bot.health`); for Docker's HEALTHCHECK, load balancers
                        and uptime checks
``GET /metrics``        Prometheus exposition (:mod:`bot.metrics`)
``GET /status``         the ``shadow status --json`` document, read from the ledger
``GET /``               the dashboard (:mod:`bot.web`): overview, market, equity,
                        trades, models; its JSON under ``/api/``
``GET /api``            the list of endpoints
======================  ============================================================

Nothing here can change anything: only GET exists (any other method is 405), and the
ledger is opened read-only. Off unless ``--http`` / ``[service] http`` is set; a bare
port listens on the loopback address, and another machine's address needs
``--http-public`` (:mod:`bot.web.listen`).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack, closing
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.health import HealthMonitor
from bot.metrics import DaemonMetrics
from bot.web.app import serve_dashboard
from bot.web.listen import HttpListenError, check_public, url_host
from config.settings import ServiceSettings, parse_listen
from state.database import connect_reader
from state.errors import LedgerError
from state.readers import status_document

if TYPE_CHECKING:
    from bot.daemon import Daemon

log = logging.getLogger(__name__)

ENDPOINTS = {"/": "the dashboard",
             "/health": "200 when healthy, 503 with the reasons otherwise",
             "/metrics": "Prometheus metrics",
             "/status": "the `shadow status --json` document",
             "/api/": "the dashboard's JSON (see bot/web/api.py)"}

__all__ = ["ENDPOINTS", "HttpListenError", "ServiceApi"]


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
        self.service = service
        self.host, self.port = parse_listen(service.http)
        self.health = HealthMonitor(daemon, service)
        self.metrics = DaemonMetrics(daemon)
        self._stack = AsyncExitStack()

    @property
    def url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"

    async def __aenter__(self) -> ServiceApi:
        check_public(self.host, self.port, allow_public=self.service.http_public)
        ledger = self.daemon.settings.ledger
        async with AsyncExitStack() as stack:
            self.port = await serve_dashboard(stack, ledger.db_path, self.host, self.port,
                                              lock_timeout_s=ledger.lock_timeout_s, now_ms=self.daemon.clock.now_ms,
                                              service=self.service, health=self._health_document,
                                              routes=self._add_routes)
            self._stack = stack.pop_all()
        log.info("HTTP: %s/health, /metrics and /status; the dashboard at %s/", self.url, self.url)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stack.aclose()

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        app.router.add_get("/api", self._index)

    async def _index(self, request: web.Request) -> web.Response:
        return web.json_response({"service": "shadow", "endpoints": ENDPOINTS})

    async def _health_document(self) -> dict[str, Any]:
        return (await self.health.check()).as_dict()

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
