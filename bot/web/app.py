"""The dashboard on an aiohttp application: pages, static files, the API, and the rules
every response follows.

- **Read-only:** only GET (and HEAD) exist; any other method is 405 on every path.
- **No script but ours:** a Content-Security-Policy allows scripts, styles and
  connections from this origin only, and no inline script or style; the pages are static
  files that fill themselves from the JSON API with ``textContent`` (never as HTML), so a
  symbol or strategy name holding markup shows as text.
- **Nothing from elsewhere:** the chart library is vendored (``static/vendor/``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.ledger_watch import LedgerWatch
from bot.web.api import DashboardApi, DashboardContext, HealthCheck
from bot.web.listen import start_site
from bot.web.reader import LedgerReader
from config.settings import ServiceSettings

STATIC_DIR = Path(__file__).resolve().parent / "static"

PAGES: dict[str, str] = {"/": "overview.html", "/market": "market.html", "/equity": "equity.html",
                         "/trades": "trades.html", "/models": "models.html"}
"""Path -> page file in ``static/``."""

CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
ALLOWED_METHODS = ("GET", "HEAD")


@web.middleware
async def read_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """405 for anything but GET and HEAD, whatever the path."""
    if request.method not in ALLOWED_METHODS:
        raise web.HTTPMethodNotAllowed(request.method, ALLOWED_METHODS)
    return await handler(request)


async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")


def new_application() -> web.Application:
    """An application with the read-only rule and the security headers on every response
    (errors and streams included)."""
    app = web.Application(middlewares=[read_only])
    app.on_response_prepare.append(_secure_headers)
    return app


def add_dashboard(app: web.Application, context: DashboardContext) -> None:
    """Add the pages at :data:`PAGES`, ``/static/`` and the API to ``app``."""
    for path, page in PAGES.items():
        app.router.add_get(path, _page(STATIC_DIR / page))
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    DashboardApi(context).add_routes(app)

    async def end_streams(app: web.Application) -> None:
        context.watch.release()

    app.on_shutdown.append(end_streams)


def _page(file: Path) -> Handler:
    async def handler(request: web.Request) -> web.FileResponse:
        return web.FileResponse(file, headers={"Cache-Control": "no-cache"})

    return handler


async def serve_dashboard(stack: AsyncExitStack, db: Path, host: str, port: int, *, lock_timeout_s: float,
                          now_ms: Callable[[], int], service: ServiceSettings, health: HealthCheck | None = None,
                          routes: Callable[[web.Application], None] | None = None) -> int:
    """Serve the dashboard of ledger ``db`` on ``host:port`` until ``stack`` closes.

    Args:
        stack: owns the reader, the ledger watch and the server (closed in reverse order).
        now_ms: the clock ages are measured with.
        service: ``[service]`` settings (the ledger-only health rule).
        health: the running daemon's verdict (``shadow run``); ``None`` for a ledger alone.
        routes: adds more routes to the application (the daemon's ``/health`` and others).

    Returns:
        The port listened on (the real one when ``port`` is 0).
    """
    reader = LedgerReader(db, lock_timeout_s)
    stack.callback(reader.close)
    watch = await stack.enter_async_context(LedgerWatch(db, lock_timeout_s=lock_timeout_s))
    app = new_application()
    if routes is not None:
        routes(app)
    add_dashboard(app, DashboardContext(reader, watch, now_ms, service, health=health))
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    port = await start_site(runner, host, port)
    stack.push_async_callback(runner.cleanup)
    return port
