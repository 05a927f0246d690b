"""``shadow trades``, ``status``, ``export`` and ``migrate``: reviewing the ledger.

(The registry listing, ``shadow models``, lives in :mod:`bot.commands.models`.)

Every command opens its own read-only connection (except ``migrate``), so it works
while the daemon is writing. ``--db`` defaults to ``[ledger] db_path``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from bot.commands.common import console, ledger_reader, review_table
from config import UserError
from config.cli import AccountOption, ConfigOption, DbOption, command_settings
from config.market import UNIT_MS

_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")


def parse_since(text: str, now_ms: int) -> int:
    """``2024-03-01``, ``2024-03-01 12:00`` (UTC) or a look-back such as ``90m``, ``24h``, ``7d``, ``2w``."""
    import pandas as pd

    match = _RELATIVE.match(text.strip())
    if match:
        return now_ms - int(match.group(1)) * UNIT_MS[match.group(2)]
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date, a date-time or a look-back like 24h / 7d") from None
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.timestamp() * 1000)


def _money(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _pnl(value: float, digits: int = 4) -> str:
    colour = "green" if value > 0 else "red" if value < 0 else "white"
    return f"[{colour}]{value:+,.{digits}f}[/{colour}]"


def trades(
    ctx: typer.Context,
    account: AccountOption = None,
    symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="Only this symbol, e.g. BTCUSDT.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Exited at or after: 2024-03-01, '2024-03-01 12:00' or 24h/7d.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Only trades opened by this model version.")
    ] = None,
    last: Annotated[int, typer.Option("--last", "-n", min=1, help="Show the newest N trades.")] = 50,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """The trade log: closed round trips with PnL, fees, funding, holding time, and the account and model that
    opened them."""
    from env.portfolio import win_rate
    from state.clock import SYSTEM_CLOCK
    from state.readers import check_account, trades_frame

    since_ms = parse_since(since, SYSTEM_CLOCK.now_ms()) if since else None
    with ledger_reader(command_settings(ctx).ledger) as conn:
        check_account(conn, account)
        frame = trades_frame(conn, account=account, symbol=symbol, since_ms=since_ms, model=model, last=last)
    if frame.empty:
        console.print("no closed trades match")
        return
    table = review_table(f"trades ({len(frame)} shown)", "#", "account", "symbol", "side", "entry (UTC)", "exit (UTC)",
                         "min", "qty", "entry px", "exit px", "fees", "funding", "net PnL", "ret %", "model")
    for t in frame.to_dict("records"):
        table.add_row(str(t["trade_id"]), t["account"], t["symbol"], t["side"], t["entry_time"][:16],
                      t["exit_time"][:16], f"{t['holding_minutes']:g}", f"{t['qty']:.6g}", _money(t["entry_price"], 2),
                      _money(t["exit_price"], 2), _money(t["fees"]), _money(t["funding"]), _pnl(t["net_pnl"]),
                      _pnl(t["return_pct"], 2), t["model_version"] or "-")
    console.print(table)
    wins = int((frame["net_pnl"] > 0).sum())
    console.print(f"{len(frame)} trades, {wins} won ({100 * win_rate(wins, len(frame)):.1f}%), "
                  f"net PnL {frame['net_pnl'].sum():+,.4f}, fees {frame['fees'].sum():,.4f}, "
                  f"funding {frame['funding'].sum():+,.4f} (paid +, received -)", highlight=False, markup=False)


def status(
    ctx: typer.Context,
    account: AccountOption = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON (the same document the HTTP status serves).")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Per account and symbol: position, entry, unrealised PnL, equity, last candle, model, time since the decision."""
    from state.clock import SYSTEM_CLOCK
    from state.readers import check_account, status_document

    with ledger_reader(command_settings(ctx).ledger) as conn:
        check_account(conn, account)
        document = status_document(conn, SYSTEM_CLOCK.now_ms(), account)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    run = document["run"]
    if run:
        state = f"stopped {run['stopped_at']} ({run['stop_reason']})" if run["stopped_at"] else "running (or crashed)"
        console.print(f"daemon run #{run['run_id']} started {run['started_at']}: {state}",
                      highlight=False, markup=False)
    for problem in document["feed_problems"]:
        console.print(f"{problem['symbol']}: not streaming: {problem['detail']}", style="bold red", highlight=False,
                      markup=False, soft_wrap=True)
    if not document["symbols"]:
        console.print("no decisions recorded yet", markup=False)
        return
    for name in document["accounts"]:
        console.print(_status_table(name, [s for s in document["symbols"] if s["account"] == name]))


def _age(seconds: float) -> str:
    from state.readers import age_text  # imported when a status is shown: the module loads pandas

    return age_text(seconds)


_STATUS_FIELDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "position": lambda s: f"{s['position']} {s['qty']:.6g}" if s["qty"] else "flat",
    "entry price": lambda s: _money(s["entry_price"], 2),
    "entry time (UTC)": lambda s: (s["entry_time"] or "-")[:16].replace("T", " "),
    "last price": lambda s: _money(s["last_price"], 2),
    "unrealised PnL": lambda s: _pnl(s["unrealized_pnl"]),
    "equity": lambda s: _money(s["equity"]),
    "total PnL": lambda s: _pnl(s["total_pnl"]),
    "fees paid": lambda s: _money(s["fees_paid"]),
    "funding paid": lambda s: f"{s['funding_paid']:+,.4f}",
    "trades (won)": lambda s: f"{s['trades']} ({100 * s['win_rate']:.0f}%)",
    "max drawdown": lambda s: f"{100 * s['max_drawdown']:.2f}%",
    "last candle (UTC)": lambda s: s["last_candle"][:16].replace("T", " "),
    "model": lambda s: s["model_version"] or s["strategy"] or "-",
    "since last decision": lambda s: _age(s["seconds_since_decision"]),
}


def _status_table(account: str, symbols: list[dict[str, Any]]) -> Table:
    """One account, one column per symbol: a handful of symbols with a dozen fields reads best transposed."""
    table = Table(title=f"account {account}", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("")
    for s in symbols:
        table.add_column(s["symbol"], justify="right", no_wrap=True)
    for name, cell in _STATUS_FIELDS.items():
        table.add_row(name, *(cell(s) for s in symbols))
    return table


def export(
    ctx: typer.Context,
    table: Annotated[str, typer.Option("--table", "-t", help="Table or view, e.g. trades, v_trades, v_daily_pnl.")],
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="csv or parquet (default: from --out, else csv).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (default: TABLE.FORMAT).")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Write any table or view to CSV or Parquet (atomically: a failed export leaves no partial file)."""
    from state.readers import read_relation

    fmt = (fmt or (out.suffix.lstrip(".") if out is not None and out.suffix else "csv")).lower()
    if fmt not in ("csv", "parquet"):
        raise typer.BadParameter(f"{fmt!r} is not csv or parquet", param_hint="--format")
    out = out or Path(f"{table}.{fmt}")
    with ledger_reader(command_settings(ctx).ledger) as conn:
        frame = read_relation(conn, table)
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise UserError("parquet export needs pyarrow: pip install pyarrow (or use --format csv)")
    partial = out.with_name(f".{out.name}.partial")
    try:
        if fmt == "csv":
            frame.to_csv(partial, index=False)
        else:
            frame.to_parquet(partial, index=False)
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    console.print(f"wrote {len(frame)} rows of {table} to {out}", highlight=False, markup=False)


def migrate(ctx: typer.Context, db: DbOption = None, config: ConfigOption = None) -> None:
    """Upgrade a ledger written by an older Shadow to this version's schema (the daemon does it on start too)."""
    from state.database import prepare_for_writing
    from state.errors import LedgerNotFoundError
    from state.migrations import LATEST_VERSION

    ledger = command_settings(ctx).ledger
    path = ledger.db_path
    if not path.is_file():
        raise LedgerNotFoundError(f"ledger {path}: no such file")
    before, applied = prepare_for_writing(path, ledger.lock_timeout_s)
    if applied:
        console.print(f"ledger {path}: schema version {before} -> {LATEST_VERSION}", highlight=False, markup=False)
    else:
        console.print(f"ledger {path}: already at schema version {LATEST_VERSION}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("trades")(trades)
    app.command("status")(status)
    app.command("export")(export)
    app.command("migrate")(migrate)
