"""``shadow doctor``: check an installation before (or while) it runs, and say what to fix.

Each check gives ``ok``, ``warn`` (works, but look at it) or ``FAIL`` (``shadow run``
would fail or misbehave), with a one-line fix. Checks, in order:

- **config**: the settings load (file, ``SHADOW_*`` variables); the rest needs them;
- **ledger**: the file is a Shadow ledger, passes ``PRAGMA integrity_check`` and
  ``foreign_key_check``, its schema is one this code can use, and a writer could commit;
- **registry**: every registered model file exists, has its recorded sha256 (the daemon
  refuses one that changed: a model zip is a pickle) and metadata this code can serve;
- **strategy**: what ``shadow run`` would trade (a spec that builds, or a promoted model);
- **disk**: free space on the ledger's disk;
- **exchange REST** / **exchange websocket**: the configured endpoints answer as Bybit
  does, the symbols are listed; an HTTP 403 is reported as what it is (an IP ban or a
  blocked region, with Bybit's reason), asked once; **clock**: the local clock against
  the exchange's;
- **daemon**: when ``[service] http`` is set, what the running daemon's ``/health`` says.

Nothing is changed: the ledger is opened read-only, the write probe rolls back, model
files are hashed, never unpickled.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.health import free_mb
from config.errors import UserError
from config.settings import CONFIG_PATH_VARIABLE, ENV_PREFIX, ConfigError, Settings, load_settings, parse_listen
from state.database import check_writable
from state.errors import LedgerError, ledger_errors
from state.migrations import LATEST_VERSION, check_version
from state.records import ModelEntry, ModelStatus

OK, WARN, FAIL = "ok", "warn", "FAIL"
RESTORE_HINT = "restore the newest backup (stop the daemon, copy a `shadow backup` file over the ledger)"


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's verdict."""

    check: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str = ""


async def diagnose(config: Path | None, db: Path | None = None, *, timeout_s: float = 5.0) -> list[Finding]:
    """Run every check (see the module docstring); ``db`` overrides ``[ledger] db_path``."""
    overrides: dict[str, Any] = {"ledger": {"db_path": db}} if db else {}
    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        return [Finding("config", FAIL, str(exc), "correct the named setting (`python -m config.reference` "
                        "lists every key), then run shadow doctor again; the other checks need a valid configuration")]
    findings = [Finding("config", OK, _config_sources(config))]
    findings += await asyncio.to_thread(_local_checks, settings)
    findings += await _exchange_checks(settings, timeout_s)
    if settings.service.http:
        findings.append(await _daemon_check(settings, timeout_s))
    return findings


def _config_sources(config: Path | None) -> str:
    path = config or os.environ.get(CONFIG_PATH_VARIABLE)
    variables = sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k != CONFIG_PATH_VARIABLE)
    parts = [f"file {path}" if path else "no config file (defaults)"]
    if variables:
        parts.append("variables " + ", ".join(variables))
    return "; ".join(parts)


# -- on this machine ---------------------------------------------------------------

def _local_checks(settings: Settings) -> list[Finding]:
    path = settings.ledger.db_path
    ledger, models = _ledger_check(path, settings.ledger.lock_timeout_s)
    findings = [ledger]
    if models is not None:
        findings.append(_registry_check(models, settings.env.lookback_window))
    findings.append(_strategy_check(settings, models or []))
    free = free_mb(path)
    need = settings.service.min_free_disk_mb
    findings.append(Finding("disk", OK, f"{free:,.0f} MB free for {path}") if free >= need else
                    Finding("disk", FAIL, f"{free:,.0f} MB free for {path}, less than [service] min_free_disk_mb "
                            f"({need:g} MB)", "free space, or move [ledger] db_path to a larger disk"))
    return findings


def _ledger_check(path: Path, lock_timeout_s: float) -> tuple[Finding, list[ModelEntry] | None]:
    """The ledger's file, schema, integrity and writability; its models when readable."""
    from state.readers import list_models

    if not path.exists():
        return Finding("ledger", WARN, f"{path} does not exist yet; `shadow run` creates it",
                       "nothing, unless you expected an existing ledger there: then fix [ledger] db_path or --db"), None
    try:
        with ledger_errors(path, lock_timeout_s), closing(
                sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=lock_timeout_s)) as conn:
            version = check_version(conn, path)
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall() if row[0] != "ok"]
            problems += [f"foreign key: {row}" for row in conn.execute("PRAGMA foreign_key_check").fetchall()]
            models = list_models(conn) if version == LATEST_VERSION else None
        if not problems:
            check_writable(path, min(1.0, lock_timeout_s))
    except LedgerError as exc:
        fix = f"point [ledger] db_path (or --db) at the ledger, or {RESTORE_HINT}"
        return Finding("ledger", FAIL, str(exc), fix), None
    if problems:
        return Finding("ledger", FAIL, f"{path} is damaged: {'; '.join(problems[:3])}", RESTORE_HINT), None
    if version < LATEST_VERSION:
        return Finding("ledger", WARN, f"{path}: schema version {version}, this Shadow writes {LATEST_VERSION}",
                       "nothing: `shadow run` (or `shadow migrate`) upgrades it; take a `shadow backup` first"), None
    return Finding("ledger", OK, f"{path}: schema {version}, integrity ok, writable"), models


def _registry_check(models: list[ModelEntry], lookback_window: int) -> Finding:
    """Every model file against its registry row (hashes only: nothing is unpickled)."""
    failures: list[str] = []
    warnings: list[str] = []
    for model in models:
        problem = _model_problem(model, lookback_window)
        if problem:
            # A model that can never serve again (retired, rejected) is worth a warning only.
            serving = model.status in (ModelStatus.PROMOTED, ModelStatus.CANDIDATE)
            (failures if serving else warnings).append(f"({model.status}) {problem}")
    fix = ("restore the model files from a backup of the registry folder, or retire the model; "
           "never copy a model file in by hand")
    if failures:
        return Finding("registry", FAIL, "; ".join(failures + warnings), fix)
    if warnings:
        return Finding("registry", WARN, "; ".join(warnings), fix)
    return Finding("registry", OK, f"{len(models)} model file(s), each matching its sha256 and this code's features")


def _model_problem(model: ModelEntry, lookback_window: int) -> str | None:
    """What keeps the daemon from loading ``model`` (the checks it makes before it unpickles
    a registry model: :func:`trainer.models.store.verify_model_file`), or ``None``."""
    from trainer.models.store import ModelIntegrityError, verify_model_file

    try:
        verify_model_file(model, lookback_window)
    except ModelIntegrityError as exc:
        return str(exc)
    except UserError as exc:
        return f"model {model.version}: {exc}"
    return None


def _strategy_check(settings: Settings, models: list[ModelEntry]) -> Finding:
    """What ``shadow run`` would trade, account by account, checked without loading a model."""
    from bot.bybit.markets import interval as parse_interval
    from bot.serving import pinned_model, promoted_model
    from config.accounts import registry_version, trading_accounts

    accounts = trading_accounts(settings)
    followers = [a for a in accounts if a.follows_registry]
    try:
        if followers:
            _check_spec(settings.daemon.fallback, settings.env.lookback_window)
        for account in accounts:
            version = registry_version(account.strategy)
            if version is not None:
                pinned_model(version, models, account.name)
            elif not account.follows_registry:
                _check_spec(account.strategy, settings.env.lookback_window)
    except UserError as exc:
        return Finding("strategy", FAIL, str(exc), "fix [daemon] strategy / fallback, the [[accounts]] strategies "
                       "(or --strategy, --account)")
    others = ", ".join(f"{a.name}: {a.strategy}" for a in accounts if not a.follows_registry)
    if not followers:
        return Finding("strategy", OK, others if len(accounts) > 1 else accounts[0].strategy)
    iv = parse_interval(settings.feed.interval).name
    symbols = sorted({s for a in followers for s in a.symbols})
    cold = [s for s in symbols if promoted_model(models, s, iv) is None]
    if cold:
        return Finding("strategy", WARN, f"no promoted model for {', '.join(cold)} {iv}: the fallback "
                       f"{settings.daemon.fallback!r} trades until one is promoted",
                       "nothing, if this is a first start; otherwise promote a model (shadow models lists them)")
    return Finding("strategy", OK, f"registry: a promoted model for every symbol ({', '.join(symbols)})"
                   + (f"; {others}" if others else ""))


def _check_spec(spec: str, lookback_window: int) -> None:
    """A spec that would build; a PPO file is checked by its metadata, not unpickled."""
    from strategies.base import parse_spec
    from strategies.model_metadata import check_compatible, load_metadata
    from strategies.specs import build_strategy

    parsed = parse_spec(spec)
    if parsed.name != "ppo":
        build_strategy(spec, lookback_window=lookback_window)
        return
    path = Path(parsed.positional or parsed.params.get("path", ""))
    if not path.is_file():
        raise UserError(f"strategy {spec!r}: model file {path} not found")
    check_compatible(load_metadata(path), path, lookback_window)


# -- over the network ----------------------------------------------------------------

async def _exchange_checks(settings: Settings, timeout_s: float) -> list[Finding]:
    return [*await _rest_check(settings, timeout_s), await _websocket_check(settings, timeout_s)]


async def _rest_check(settings: Settings, timeout_s: float) -> list[Finding]:
    """One try each (no back-off), so an unreachable endpoint is reported in seconds."""
    from bot.bybit.markets import UnknownSymbolError
    from bot.bybit.rest import BybitRest, RestForbidden

    exchange = settings.exchange.model_copy(update={"rest_attempts": 1, "rest_timeout_s": timeout_s})
    url = exchange.rest_url
    async with BybitRest(exchange, wait_out_403=False) as rest:
        try:
            before_ms = time.time() * 1000
            server_ms = await asyncio.wait_for(rest.server_time_ms(), timeout_s + 1)
            offset_s = (server_ms - (before_ms + time.time() * 1000) / 2) / 1000
            await asyncio.wait_for(rest.resolve(settings.feed.symbols), timeout_s + 1)
        except TimeoutError:
            return [_unreachable("exchange REST", f"{url}: no answer within {timeout_s:g} s", "rest_url")]
        except UnknownSymbolError as exc:
            return [Finding("exchange REST", FAIL, str(exc), "fix [feed] symbols (or [exchange] category)")]
        except RestForbidden as exc:
            return [Finding("exchange REST", FAIL, str(exc),
                            "stop every client on this IP for 10 minutes (a running daemon waits by itself), then "
                            "lower [exchange] rest_requests_per_s; if it persists, the region is blocked: run Shadow "
                            "from a host in a region Bybit serves")]
        except UserError as exc:
            return [_unreachable("exchange REST", str(exc), "rest_url")]  # the message names the URL
    margin = max(1.0, settings.service.health_margin_s)
    clock = (Finding("clock", OK, f"local clock within {abs(offset_s):.1f} s of the exchange's")
             if abs(offset_s) <= margin else
             Finding("clock", WARN, f"the local clock is {offset_s:+,.1f} s off the exchange's (more than "
                     f"[service] health_margin_s = {margin:g} s): /health judges candle age on the local clock",
                     "enable time sync (`timedatectl set-ntp true`); expected against a replay server, whose clock "
                     "is the replayed data's"))
    return [Finding("exchange REST", OK, f"{url} answers; {', '.join(settings.feed.symbols)} listed "
                    f"({exchange.category})"), clock]


async def _websocket_check(settings: Settings, timeout_s: float) -> Finding:
    """Open the stream and exchange one JSON ping/pong, as the daemon's keepalive does."""
    from websockets.asyncio.client import connect

    url = settings.exchange.ws_url
    try:
        async with asyncio.timeout(timeout_s + 1):
            async with connect(url, open_timeout=timeout_s, ping_interval=None) as ws:
                await ws.send(json.dumps({"req_id": "doctor", "op": "ping"}))
                reply = json.loads(await ws.recv())
    except Exception as exc:  # refused, reset, timed out, not a websocket...: all reported
        detail = "no answer in time" if isinstance(exc, asyncio.TimeoutError) else f"{type(exc).__name__}: {exc}"
        return _unreachable("exchange websocket", f"{url}: {detail}", "ws_url")
    if reply.get("ret_msg") != "pong" and reply.get("op") != "pong":
        return Finding("exchange websocket", FAIL, f"{url} answered the ping with {reply!r}, not a Bybit pong",
                       "point [exchange] ws_url at a Bybit v5 public stream")
    return Finding("exchange websocket", OK, f"{url} answers the JSON ping")


def _unreachable(check: str, detail: str, key: str) -> Finding:
    return Finding(check, FAIL, f"cannot reach {detail}",
                   f"check [exchange] {key}, DNS, the firewall or proxy, and that the server runs")


async def _daemon_check(settings: Settings, timeout_s: float) -> Finding:
    host, port = parse_listen(settings.service.http)
    host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/health"
    try:
        async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
                    session.get(url) as response):
            body = await response.json()
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        return Finding("daemon", WARN, f"nothing answers on {url} ({type(exc).__name__}); is `shadow run` running?",
                       "start it (systemctl start shadow / docker compose up -d) if it should be")
    if body.get("status") == "ok":
        return Finding("daemon", OK, f"{url}: healthy")
    return Finding("daemon", FAIL, f"{url}: {body.get('status')}: {'; '.join(body.get('problems', []))}",
                   "see the daemon's log (journalctl -u shadow / docker compose logs shadow)")

