"""The trainer's commands: ``train`` (the seed's flags) and ``fetch``.

``shadow train`` and ``python -m trainer.train_ppo`` run the same function with the same
flags. A flag left out takes its value from the ``[train]`` (or ``[env]``) settings, whose
defaults are the seed's. Flags are validated by the settings model, so a bad value fails
with a one-line error naming the setting before any work starts. torch and SB3 are
imported inside the commands, so ``shadow --help`` stays instant.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer
from pydantic import BaseModel

from config.errors import UserError
from config.settings import EnvSettings, Settings, TrainSettings, load_settings

if TYPE_CHECKING:
    from trainer.jobs.backends import Backend as JobBackend
    from trainer.jobs.board import Board

T = TypeVar("T")
LOG_FILE = Path("ppo_training.log")
INTERRUPTED_EXIT_CODE = 130


def _flag(field: str, section: type[BaseModel] = TrainSettings) -> Any:
    """A typer option whose help and shown default come from the settings field."""
    info = section.model_fields[field]
    return typer.Option(help=f"{info.description} (default: {info.default})", show_default=False)


ConfigFile = Annotated[
    Optional[Path], typer.Option("--config", "-c", help="TOML settings file (default: $SHADOW_CONFIG).")
]
Symbol = Annotated[Optional[str], _flag("symbol")]
Backend = Annotated[Optional[str], typer.Option(help="local (processes here) or ray (default: \\[compute] backend)")]
Workers = Annotated[Optional[int], typer.Option(help="jobs at once (default: cores / torch threads, or the Ray "
                                                      "cluster's CPUs)")]
RayAddress = Annotated[Optional[str], typer.Option(help="Ray cluster address (ray://host:10001 or host:6379); "
                                                        "default: a local Ray instance")]
Timeframe = Annotated[Optional[str], _flag("timeframe")]
NumCandles = Annotated[Optional[int], _flag("num_candles")]


def train_command(
    config: ConfigFile = None,
    symbol: Symbol = None,
    timeframe: Timeframe = None,
    num_candles: NumCandles = None,
    initial_balance: Annotated[Optional[float], _flag("initial_balance", EnvSettings)] = None,
    total_timesteps: Annotated[Optional[int], _flag("total_timesteps")] = None,
    n_envs: Annotated[Optional[int], _flag("n_envs")] = None,
    learning_rate: Annotated[Optional[float], _flag("learning_rate")] = None,
    batch_size: Annotated[Optional[int], _flag("batch_size")] = None,
    n_epochs: Annotated[Optional[int], _flag("n_epochs")] = None,
    save_path: Annotated[Optional[Path], _flag("save_path")] = None,
    log_dir: Annotated[Optional[Path], _flag("log_dir")] = None,
    data: Annotated[Optional[Path], _flag("data")] = None,
    seed: Annotated[Optional[int], _flag("seed")] = None,
    resume: Annotated[Optional[Path], _flag("resume")] = None,
    device: Annotated[Optional[str], _flag("device")] = None,
    vec_env: Annotated[Optional[str], _flag("vec_env")] = None,
    n_steps: Annotated[Optional[int], _flag("n_steps")] = None,
    episode_length: Annotated[Optional[int], _flag("episode_length")] = None,
    checkpoint_freq: Annotated[Optional[int], _flag("checkpoint_freq")] = None,
    eval_freq: Annotated[Optional[int], _flag("eval_freq")] = None,
    progress: Annotated[
        Optional[bool], typer.Option("--progress/--no-progress", help="progress bars (default: on)")
    ] = None,
    symbols: Annotated[
        Optional[str], typer.Option(help="train one model per symbol, side by side: BTCUSDT,ETHUSDT (Bybit ids in the "
                                    "\\[exchange] category) or ccxt symbols; outputs under save-path/ID/, and "
                                    "--data needs {symbol} in its path")
    ] = None,
    shared: Annotated[
        bool, typer.Option("--shared", help="with --symbols: train ONE model on every symbol's candles (outputs as "
                           "for one symbol, a test file per symbol under data/ID/); --resume continues a shared "
                           "model of the same symbols")
    ] = False,
    backend: Backend = None,
    workers: Workers = None,
    ray_address: RayAddress = None,
) -> None:
    """Train a PPO policy on Bybit candles (or on --data FILE), the seed's train_ppo."""
    flags = {
        "symbol": symbol, "timeframe": timeframe, "num_candles": num_candles, "total_timesteps": total_timesteps,
        "n_envs": n_envs, "learning_rate": learning_rate, "batch_size": batch_size, "n_epochs": n_epochs,
        "save_path": save_path, "log_dir": log_dir, "data": data, "seed": seed, "resume": resume,
        "device": device, "vec_env": vec_env, "n_steps": n_steps, "episode_length": episode_length,
        "checkpoint_freq": checkpoint_freq, "eval_freq": eval_freq, "progress": progress,
    }
    settings = _settings(config, train=flags, env={"initial_balance": initial_balance},
                         compute={"backend": backend, "workers": workers, "ray_address": ray_address})
    if shared and symbols is None:
        raise UserError("--shared trains one model on several symbols: it needs --symbols A,B,...")
    configure_logging()
    if symbols is not None:
        if symbol is not None:
            raise UserError("give --symbol or --symbols, not both")
        if shared:
            _train_shared(settings, symbols)
        else:
            _train_symbols(settings, symbols)
        return
    from trainer.training.single_symbol import train

    try:
        result = train(settings)
    except KeyboardInterrupt:
        logging.getLogger(__name__).warning("interrupted")
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
    if result.interrupted:
        raise typer.Exit(INTERRUPTED_EXIT_CODE)
    typer.echo(f"final model: {result.final_model} ({result.num_timesteps} steps)")


def _train_symbols(settings: Settings, symbols: str) -> None:
    """``--symbols``: one model per symbol on the chosen backend, with a live table."""
    from trainer.training.multi_symbol import parse_symbols, train_symbols

    markets = parse_symbols(symbols, settings.exchange.category)
    outcomes = _on_backend(
        settings, lambda runner: f"shadow train: {len(markets)} symbols on {runner.name} ({runner.workers} at a time)",
        "validation return", lambda runner, board: train_symbols(settings, markets, runner, board=board))
    failed = [symbol for symbol, outcome in outcomes.items() if not outcome.ok]
    for symbol, outcome in outcomes.items():
        if outcome.ok:
            typer.echo(f"{symbol}: {outcome.result.num_timesteps} steps, validation return "
                       f"{100 * outcome.result.validation_return:+.2f}%")
        else:
            typer.echo(f"{symbol}: FAILED: {outcome.error.strip().splitlines()[-1]}", err=True)
    if failed:
        raise typer.Exit(1)


def _train_shared(settings: Settings, symbols: str) -> None:
    """``--symbols --shared``: one model on every symbol, as one job on the backend, with a live table."""
    from trainer.training.multi_symbol import parse_symbols
    from trainer.training.shared_model import prepare_shared, run_shared
    from trainer.training.single_symbol import FINAL_MODEL_NAME

    job = prepare_shared(settings, parse_symbols(symbols, settings.exchange.category))
    outcome = _on_backend(
        settings, lambda runner: f"shadow train: one model on {len(job.symbols)} symbols on {runner.name}",
        "mean validation return", lambda runner, board: run_shared(job, runner, board))
    if not outcome.ok:
        typer.echo(f"{outcome.key}: FAILED: {outcome.error.strip().splitlines()[-1]}", err=True)
        raise typer.Exit(1)
    result = outcome.result
    each = ", ".join(f"{market} {100 * value:+.2f}%" for market, value in result.validation_returns.items())
    typer.echo(f"{outcome.key}: {result.num_timesteps} steps, validation return {each} "
               f"(mean {100 * result.validation_return:+.2f}%)")
    typer.echo(f"final model: {settings.train.save_path / FINAL_MODEL_NAME} ({result.num_timesteps} steps)")


def _on_backend(settings: Settings, title: Callable[[JobBackend], str], value_label: str,
                run: Callable[[JobBackend, Board], T]) -> T:
    """``run`` on the backend ``[compute]`` names, with the live table of its jobs on stderr;
    Ctrl-C exits with 130 (the running jobs are stopped)."""
    from trainer.jobs.backends import make_backend
    from trainer.jobs.board import Board, live

    runner = make_backend(settings.compute, settings.train.torch_threads)
    board = Board(title(runner), value_label=value_label)
    try:
        with live(board, settings.train.progress):
            return run(runner, board)
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
    finally:
        runner.close()


def fetch_command(
    config: ConfigFile = None, symbol: Symbol = None, timeframe: Timeframe = None, num_candles: NumCandles = None
) -> None:
    """Fetch the latest closed candles from Bybit into the local cache (only what is missing)."""
    settings = _settings(config, train={"symbol": symbol, "timeframe": timeframe, "num_candles": num_candles})
    configure_logging()
    from env.candles import format_ms
    from trainer.data.bybit_public import bybit_exchange
    from trainer.data.history import Market, load_history

    args = settings.train
    market = Market(args.symbol, args.timeframe)
    exchange = bybit_exchange(settings.exchange.rest_url, market.category)
    try:
        candles = load_history(market, args.num_candles, exchange=exchange, cache_dir=args.cache_dir)
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
    times = candles["open_time_ms"]
    typer.echo(f"{len(candles)} candles {format_ms(times.iloc[0])} .. {format_ms(times.iloc[-1])} "
               f"in {market.cache_file(args.cache_dir)}")


def configure_logging(log_file: Path = LOG_FILE) -> None:
    """Log to the console and to ``ppo_training.log`` in the working directory (the seed's)."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    target = str(log_file.resolve())
    if any(getattr(h, "baseFilename", None) == target for h in root.handlers):
        return
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in (logging.FileHandler(log_file, encoding="utf-8"), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(formatter)
        root.addHandler(handler)


def _settings(config: Path | None, **sections: dict[str, Any]) -> Settings:
    """Settings with the given flags (those not None) on top of file and environment."""
    overrides = {name: given for name, values in sections.items() if (given := _given(values))}
    return load_settings(config, **overrides)


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def run_train_ppo(argv: list[str] | None = None) -> None:
    """``python -m trainer.train_ppo``: the train command alone, user errors as one line."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train_command)
    try:
        app(args=argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
