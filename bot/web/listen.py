"""Where an HTTP server may listen, and starting it there with one-line errors.

Loopback by default: a ``[service] http`` / ``--http`` address that other machines can
reach (anything but 127.0.0.0/8, ::1 and ``localhost``, host names included, since they
may resolve to anything) is refused unless ``--http-public`` (``[service] http_public``)
says so explicitly.
"""

from __future__ import annotations

import errno
import ipaddress
import logging

from aiohttp import web

from config.errors import UserError

log = logging.getLogger(__name__)


class HttpListenError(UserError):
    """The HTTP address cannot be listened on (in use, not local, no permission)."""


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_public(host: str, port: int, *, allow_public: bool, flag: str = "--http") -> None:
    """Refuse a non-loopback address unless ``allow_public``.

    Raises:
        HttpListenError: ``host`` is reachable from other machines and not allowed.
    """
    if not allow_public and not is_loopback(host):
        raise HttpListenError(
            f"{flag} {url_host(host)}:{port}: not a loopback address, so other machines could read the dashboard "
            "and the ledger; pass --http-public (or set [service] http_public = true) to allow it, "
            "or listen on 127.0.0.1")


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def start_site(runner: web.AppRunner, host: str, port: int, *, flag: str = "--http") -> int:
    """Start ``runner`` (already set up) on ``host:port``; returns the port (the real one
    when 0 asked for any). On failure the runner is cleaned up.

    Raises:
        HttpListenError: the port is in use, the address is not local, or not allowed.
    """
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        reason = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise HttpListenError(f"{flag} {url_host(host)}:{port}: cannot listen ({reason}); "
                              "choose another address or port") from None
    actual = runner.addresses[0][1]
    if not is_loopback(host):
        log.warning("HTTP listens on %s: reachable from other machines (--http-public). It is read-only, but "
                    "keep it behind a firewall or a reverse proxy with authentication", host)
    return int(actual)
