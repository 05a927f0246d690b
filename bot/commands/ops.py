"""``shadow backup`` and ``shadow doctor``: the operator's commands."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bot.commands.common import console
from config.cli import ConfigOption, DbOption, command_settings

_STATUS_STYLE = {"ok": "green", "warn": "yellow", "FAIL": "bold red"}


def backup(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Backup file (FILE.sqlite), or a folder for shadow-<UTC time>.sqlite, created if missing "
             "(default: \\[service] backup_dir).",
    )] = None,
    keep: Annotated[int | None, typer.Option(
        min=1, help="Then delete all but the newest N shadow-*.sqlite backups in that folder.")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Copy the ledger consistently while the daemon runs (SQLite's online backup API).

    The copy holds the ledger as of one commit (whole decisions only), is checked with
    PRAGMA integrity_check, and appears atomically. Restore: stop the daemon, copy the
    backup over the ledger file, start it again.
    """
    from state.backup import backup_ledger, prune_backups
    from state.clock import SYSTEM_CLOCK
    from state.readers import iso_ms

    settings = command_settings(ctx)
    source = settings.ledger.db_path
    target = out or settings.service.backup_dir
    result = backup_ledger(source, target, now_ms=SYSTEM_CLOCK.now_ms(),
                           lock_timeout_s=settings.ledger.lock_timeout_s,
                           folder=out is None or (not out.suffix and not out.exists()))
    console.print(f"backup {result.path}: {result.size_bytes / 1e6:,.1f} MB, schema {result.schema_version}, "
                  f"{result.decisions:,} decisions (last {iso_ms(result.last_decision_ms) or '-'}), integrity ok, "
                  f"{result.seconds:.2f} s", highlight=False, markup=False, soft_wrap=True)
    if keep is not None:
        for path in prune_backups(result.path.parent, keep):
            console.print(f"deleted old backup {path}", highlight=False, markup=False, soft_wrap=True)


def doctor(
    db: DbOption = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for each network check.")] = 5.0,
    config: ConfigOption = None,
) -> None:
    """Check the configuration, the ledger, the model registry, disk space and the exchange
    endpoints; print what to fix. Exits with status 1 when a check fails."""
    from bot.doctor import FAIL, diagnose

    findings = asyncio.run(diagnose(config, db, timeout_s=timeout))
    width = max(len(f.check) for f in findings)
    for f in findings:
        console.print(f"[{_STATUS_STYLE[f.status]}]{f.status:<4}[/] {f.check:<{width}}  ", end="", highlight=False,
                      soft_wrap=True)
        console.print(f.detail, highlight=False, markup=False, soft_wrap=True)
        if f.fix and f.status != "ok":
            console.print(f"     {'':<{width}}  fix: {f.fix}", highlight=False, markup=False, soft_wrap=True)
    failed = sum(f.status == FAIL for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    console.print(f"{len(findings)} checks: {len(findings) - failed - warned} ok, {warned} warning(s), "
                  f"{failed} failed", highlight=False, markup=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("doctor")(doctor)
