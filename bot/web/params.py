"""Query-string parameters of the dashboard's API, checked: a bad one is a 400 that names it."""

from __future__ import annotations

import json
from collections.abc import Sequence

from aiohttp import web


def bad_request(message: str) -> web.HTTPBadRequest:
    """A 400 whose JSON body says what is wrong (``{"error": ...}``)."""
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def text(request: web.Request, name: str) -> str | None:
    """A text parameter; empty counts as absent."""
    value = request.query.get(name)
    return value if value else None


def integer(request: web.Request, name: str, default: int | None = None, *, low: int | None = None,
            high: int | None = None) -> int | None:
    """An integer parameter within ``[low, high]``.

    Raises:
        HTTPBadRequest: not an integer, or out of range.
    """
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name}={raw!r}: not an integer") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise bad_request(f"{name}={value}: must be between {low} and {high}")
    return value


def choice(request: web.Request, name: str, choices: Sequence[str], default: str | None = None) -> str | None:
    """One of ``choices``.

    Raises:
        HTTPBadRequest: anything else.
    """
    value = text(request, name)
    if value is None:
        return default
    if value not in choices:
        raise bad_request(f"{name}={value!r}: choose one of {', '.join(choices)}")
    return value
