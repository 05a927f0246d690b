"""The websockets floor in pyproject.toml has every part of websockets that Shadow uses.

Reading the installed version's signature proves nothing about the floor: pip may have
installed anything above it. So the first release of each keyword and import is written
down here from websockets' changelog (docs/project/changelog.rst) and the release wheels
(17.0's ``process_exception`` lives in ``websockets.asyncio.client`` only; 17.1 moved it to
``websockets.client``, which exports it to type checkers), and the test checks the floor
against it and checks that the code uses nothing else.
"""

from __future__ import annotations

import ast
import tomllib

from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import REPO

WS_MODULE = REPO / "bot" / "bybit" / "ws.py"

# First websockets release with each keyword of ``websockets.asyncio.client.connect`` we pass.
CONNECT_KEYWORD_SINCE = {
    "open_timeout": "13.0",  # the new asyncio implementation's connect() (13.0)
    "close_timeout": "13.0",
    "ping_interval": "13.0",
    "logger": "13.0",
    "process_exception": "13.1",  # 13.1: "reconnecting automatically ... async for ... in connect()"
    "reconnect_delays": "17.0",  # 17.0: "Added the reconnect_delays argument ... in connect()"
}
# First release with each name imported from websockets (module, name).
IMPORT_SINCE = {
    ("websockets.asyncio.client", "ClientConnection"): "13.0",
    ("websockets.asyncio.client", "connect"): "13.0",
    ("websockets.client", "process_exception"): "17.1",  # in websockets.asyncio.client only, 13.1 .. 17.0
    ("websockets.exceptions", "ConnectionClosed"): "13.0",
    ("websockets.exceptions", "InvalidStatus"): "13.0",
}


def websockets_floor() -> Version:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [requirement] = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "websockets"]
    [floor] = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    return floor


def test_the_floor_has_every_connect_keyword_and_import_the_stream_uses() -> None:
    tree = ast.parse(WS_MODULE.read_text(encoding="utf-8"))
    keywords = {kw.arg for node in ast.walk(tree) if isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "connect" for kw in node.keywords}
    imports = {(node.module, alias.name) for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("websockets")
               for alias in node.names}
    assert keywords <= CONNECT_KEYWORD_SINCE.keys(), "a new connect() keyword: add its first release above"
    assert imports <= IMPORT_SINCE.keys(), "a new websockets import: add its first release above"
    needed = max(Version(CONNECT_KEYWORD_SINCE[k]) for k in keywords)
    needed = max(needed, *(Version(IMPORT_SINCE[i]) for i in imports))
    assert websockets_floor() >= needed
