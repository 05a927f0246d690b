"""``shadow demo``: the real service end to end on this machine, no account, no network.

1. A local Bybit-compatible server (:mod:`bot.replay`) holds the bundled real BTCUSDT
   candles: the first ones as history (closed, served over REST), the last ``candles`` to
   be replayed live over the websocket at ``speed`` candles per second.
2. A first PPO model is trained on the history only, with the default profile (the setup that
   converges, :mod:`config.profiles`), and published to the registry as the promoted model (or,
   with ``timesteps=0``, a baseline trades).
3. The daemon runs exactly as ``shadow run`` does: REST warm-up, websocket stream, engine,
   one SQLite transaction per decision, until the last replayed candle is decided.
4. A summary compares the paper account with buy & hold and flat on the same candles,
   none of which the model saw in training, with the skill figures
   (:mod:`trainer.evaluation.metrics`): did it time the market, or ride it?
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bot.bybit.sequencer import FeedCandle
from bot.daemon import Daemon
from bot.replay.market import ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer
from bot.serving import configured_strategy
from config.errors import UserError
from config.profiles import DEFAULT_PROFILE, PROFILE_NAMES, profile_values
from config.settings import (
    DaemonSettings,
    EnvSettings,
    ExchangeSettings,
    FeedSettings,
    LedgerSettings,
    Settings,
    TrainSettings,
)
from env.candles import format_ms, load_candles
from env.crypto_trading_env import SAMPLE_CANDLES
from env.execution import Account
from env.features import WARMUP_CANDLES
from env.portfolio import Portfolio, PortfolioConfig, win_rate
from env.types import Action
from state.ledger import Ledger
from state.records import ModelStatus
from trainer.evaluation.metrics import Metrics, compute_metrics
from trainer.models.store import publish_model

SYMBOL = "BTCUSDT"
MIN_HISTORY = 2_000  # candles the first model trains on, at the least
MINUTE_MS = 60_000


@dataclass
class DemoSummary:
    """What the demo produced, for the printed summary and for tests."""

    run_dir: Path
    db_path: Path
    strategy: str
    decisions: int
    trades: int
    win_rate: float
    fees: float
    equity: float
    buy_and_hold_equity: float
    initial_balance: float
    first_ms: int
    last_ms: int
    metrics: Metrics
    """The paper account's figures over the decided candles (:func:`ledger_metrics`)."""
    buy_and_hold: Metrics


def run_demo(directory: Path, *, candles: int, speed: float, timesteps: int, baseline: str,
             console: Console, seed: int = 0, profile: str = DEFAULT_PROFILE) -> DemoSummary:
    """Run the demo in a new folder under ``directory``; returns (and prints) the summary.
    The first model trains with ``profile``'s settings (:mod:`config.profiles`)."""
    if profile not in PROFILE_NAMES:
        raise UserError(f"--profile {profile}: not a profile; use one of {', '.join(PROFILE_NAMES)}")
    data = load_candles(SAMPLE_CANDLES)
    if not 2 <= candles <= len(data) - MIN_HISTORY:
        raise UserError(f"--candles {candles}: must be between 2 and {len(data) - MIN_HISTORY} "
                        f"(the bundled sample has {len(data)} candles, {MIN_HISTORY} kept as history)")
    if not speed > 0:
        raise UserError(f"--speed {speed:g}: must be more than 0 candles per second")
    if timesteps < 0:
        raise UserError(f"--timesteps {timesteps}: must be 0 (trade --baseline) or more")
    if timesteps == 0:
        configured_strategy(baseline, EnvSettings().lookback_window)  # an unknown spec fails before any file
    run_dir = directory / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=False)
    history = len(data) - candles
    summary = asyncio.run(_demo(data, history, run_dir, speed=speed, timesteps=timesteps, baseline=baseline,
                                console=console, seed=seed, profile=profile))
    console.print(summary_table(summary))
    _print_next_steps(summary, console)
    return summary


async def _demo(data: pd.DataFrame, history: int, run_dir: Path, *, speed: float, timesteps: int, baseline: str,
                console: Console, seed: int, profile: str) -> DemoSummary:
    db_path = run_dir / "shadow.sqlite"
    defaults = profile_values(profile)
    env = EnvSettings.model_validate(defaults.get("env", {}))
    train = TrainSettings.model_validate(defaults.get("train", {}))
    if timesteps > 0:
        console.print(f"[bold]1/3[/bold] training a first PPO model ({profile} profile) on {history:,} candles "
                      f"({_span(data, 0, history - 1)}), {timesteps:,} timesteps ...")
        await asyncio.to_thread(_train_first_model, data.iloc[:history].reset_index(drop=True), run_dir, db_path,
                                timesteps, env, train, seed, profile)
        strategy = "registry"
    else:
        console.print(f"[bold]1/3[/bold] no training (--timesteps 0): trading {baseline}")
        strategy = baseline
    market = ReplayMarket([ReplaySeries.from_frame(SYMBOL, data)], history=history)
    last_ms = int(market.open_time_ms[-1])
    async with ReplayServer(market, speed=speed) as server:
        settings = Settings(
            env=env,
            exchange=ExchangeSettings(category="linear", ws_url=server.ws_url("linear"), rest_url=server.rest_url),
            feed=FeedSettings(symbols=[SYMBOL], interval="1m"),
            ledger=LedgerSettings(db_path=db_path),
            daemon=DaemonSettings(strategy=strategy, warmup_candles=WARMUP_CANDLES + env.lookback_window * 10),
        )
        console.print(f"[bold]2/3[/bold] local Bybit replay on {server.rest_url}: "
                      f"{len(data) - history:,} live candles ({_span(data, history, len(data) - 1)}) "
                      f"at {speed:g} candles/s")
        daemon = Daemon(settings)
        stop = asyncio.Event()
        with Progress(TextColumn("[bold]3/3[/bold] paper trading"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=console) as progress:
            task = progress.add_task("decisions", total=len(data) - history)

            def on_decision(symbol: str, item: FeedCandle, latency_ms: float) -> None:
                progress.advance(task)
                if item.candle.open_time_ms >= last_ms:
                    stop.set()

            daemon.listeners.append(on_decision)
            report = await daemon.run(stop)
    failures = {s: st.failed for s, st in report.symbols.items() if st.failed}
    if failures:
        raise UserError(f"the daemon stopped a symbol: {failures}")
    return _summarize(run_dir, db_path, data, history, env)


def _train_first_model(candles: pd.DataFrame, run_dir: Path, db_path: Path, timesteps: int, env: EnvSettings,
                       train: TrainSettings, seed: int, profile: str) -> None:
    """Train on the history only, then publish the model to the registry as promoted."""
    from trainer.training.fold_trainer import PPOTrainer

    model = PPOTrainer(timesteps, train, symbol=SYMBOL)(
        candles, seed=seed, model_path=run_dir / "training" / "first_model.zip", env_settings=env,
        extra={"source": "shadow demo", "profile": profile})

    async def publish() -> None:
        async with await Ledger.open(db_path) as ledger:
            await publish_model(ledger, run_dir / "models", model, symbol=SYMBOL, interval="1m",
                                status=ModelStatus.PROMOTED)

    asyncio.run(publish())


def _summarize(run_dir: Path, db_path: Path, data: pd.DataFrame, history: int, env: EnvSettings) -> DemoSummary:
    with sqlite3.connect(db_path) as conn:
        decisions, first_ms, last_ms, strategies = conn.execute(
            "SELECT count(*), min(open_time_ms), max(open_time_ms), group_concat(DISTINCT "
            "coalesce(strategy, '') || coalesce(' ' || model_version, '')) FROM decisions").fetchone()
        trades, wins = conn.execute("SELECT count(*), coalesce(sum(net_pnl > 0), 0) FROM trades").fetchone()
        equity, fees = conn.execute("SELECT equity, fees_paid FROM positions WHERE symbol = ?", (SYMBOL,)).fetchone()
        metrics = ledger_metrics(conn, SYMBOL, env.initial_balance)
    closes = data.set_index("open_time_ms")["close"]
    first_close, last_close = float(closes[first_ms]), float(closes[last_ms])
    hold = Account(Portfolio(PortfolioConfig.from_settings(env)))  # buy & hold through the money step
    hold.mark(first_close, first_ms)
    (fill,) = hold.execute(Action.BUY).fills
    hold.mark(last_close, last_ms)
    p = hold.portfolio
    hold_metrics = compute_metrics([env.initial_balance, p.equity], [1], [], p.fees_paid, max(last_ms - first_ms, 1),
                                   closes=[first_close, last_close], traded_notional=fill.qty * fill.price,
                                   position_size=env.max_position_size)
    return DemoSummary(run_dir, db_path, strategies, decisions, trades, win_rate(wins, trades), fees,
                       equity, p.equity, env.initial_balance, first_ms, last_ms, metrics, hold_metrics)


def ledger_metrics(conn: sqlite3.Connection, symbol: str, initial_balance: float) -> Metrics:
    """The metrics of a symbol's paper account as its ledger recorded it: equity after each
    decision (from the initial balance), the side it then held, its closed trades, every fill's
    notional, and the decided candles' closes (the first repeated as the starting mark)."""
    from env.portfolio import ClosedTrade

    rows = conn.execute("SELECT e.equity, e.side, e.close, e.fees_paid FROM equity e WHERE e.symbol = ? "
                        "ORDER BY e.open_time_ms", (symbol,)).fetchall()
    trades = [ClosedTrade(*row) for row in conn.execute(
        "SELECT side, qty, entry_time_ms, exit_time_ms, entry_price, exit_price, gross_pnl, fees, net_pnl "
        "FROM trades WHERE symbol = ? ORDER BY trade_id", (symbol,))]
    (notional,) = conn.execute("SELECT coalesce(sum(qty * price), 0) FROM fills WHERE symbol = ?", (symbol,)).fetchone()
    equity = [initial_balance] + [row[0] for row in rows]
    closes = [rows[0][2]] + [row[2] for row in rows]
    return compute_metrics(equity, [row[1] for row in rows], trades, rows[-1][3], MINUTE_MS, closes=closes,
                           traded_notional=notional)


def summary_table(s: DemoSummary) -> Table:
    """Paper account vs buy & hold and flat, on the decided candles, with the skill figures."""
    table = Table(title=f"Paper trading {SYMBOL} 1m, {s.decisions:,} decisions "
                        f"({format_ms(s.first_ms)} .. {format_ms(s.last_ms)}), unseen in training")
    for column in ("strategy", "final equity", "return", "timing", "long / short", "net exposure", "trades",
                   "win rate", "fees", "turnover"):
        table.add_column(column, justify="left" if column == "strategy" else "right")

    def pct(value: float) -> str:
        return f"{100 * value:+.2f}%"

    rows = ((f"shadow ({s.strategy})", s.equity, f"{s.trades}", f"{100 * s.win_rate:.1f}%", s.metrics),
            ("buy & hold", s.buy_and_hold_equity, "1", "-", s.buy_and_hold))
    for name, equity, trades, wins, m in rows:
        table.add_row(name, f"{equity:.2f}", pct(equity / s.initial_balance - 1),
                      "n/a" if m.timing is None else pct(m.timing),
                      f"{100 * m.time_long:.0f}% / {100 * m.time_short:.0f}%", f"{m.net_exposure:+.2f}", trades, wins,
                      f"{100 * m.fees_to_capital:.2f}%", f"{m.turnover:.1f}x")
    table.add_row("flat", f"{s.initial_balance:.2f}", "+0.00%", "+0.00%", "0% / 0%", "+0.00", "0", "-", "0.00%",
                  "0.0x")
    table.caption = ("timing = return - net exposure x buy & hold return: what the policy made beyond riding the "
                     "market; fees in % of the starting capital; turnover = traded notional / capital")
    return table


def _print_next_steps(s: DemoSummary, console: Console) -> None:
    db = s.db_path
    console.print(f"\nLedger: [bold]{db}[/bold]  (models in {s.run_dir / 'models'})")
    console.print("Look inside:")
    for command in (f"shadow trades --db {db} --last 10", f"shadow status --db {db}", f"shadow models --db {db}",
                    f"sqlite3 {db} \"SELECT * FROM v_daily_pnl\"", f"shadow verify --db {db}"):
        console.print(f"  {command}", highlight=False, markup=False)


def _span(data: pd.DataFrame, first: int, last: int) -> str:
    return f"{format_ms(data['open_time_ms'].iloc[first])} .. {format_ms(data['open_time_ms'].iloc[last])}"

