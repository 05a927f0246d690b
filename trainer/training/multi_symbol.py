"""``shadow train --symbols A,B,...``: one model per symbol, each trained by the single-symbol
pipeline (:func:`trainer.training.single_symbol.train`), run side by side on a backend.

Per symbol (``ID`` = Bybit's id, ``BTCUSDT``) the outputs are those of ``shadow train``,
one level down::

    {save_path}/{ID}/ppo_crypto_model_final.zip, checkpoints/, best/
    {log_dir}/{ID}/tensorboard/, eval/, env_N/
    {test_data_path.parent}/{ID}/{test_data_path.name}

The driver loads every symbol's candles (``--data`` with ``{symbol}`` in the path, or Bybit
through the cache: one connection, rate limits respected), then each worker trains one
symbol in a scratch folder and returns the folder packed as a tar archive, which the driver
unpacks into the paths above. So a Ray worker on another machine delivers the same files as
a local process. A symbol that fails is recorded (with its error) and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import ValidationError

from config.errors import UserError
from config.settings import Settings
from strategies.model_metadata import load_metadata
from trainer.data.history import Market, OhlcvSource
from trainer.jobs.backends import Backend
from trainer.jobs.board import Board
from trainer.jobs.files import JobFiles, output_targets, scratch
from trainer.jobs.runner import Job, JobOutcome, run_jobs
from trainer.training.single_symbol import check_train_args, load_training_candles
from trainer.training.tensorboard import continue_tensorboard_numbering, latest_tensorboard_run

if TYPE_CHECKING:
    from trainer.evaluation.metrics import Metrics

log = logging.getLogger(__name__)

QUOTES = ("USDT", "USDC", "BTC", "ETH", "EUR", "DAI")
"""Quote currencies recognised at the end of a Bybit symbol (``ETHBTC`` = ETH/BTC)."""
SYMBOL_PLACEHOLDER = "{symbol}"


class SymbolsError(UserError):
    """A ``--symbols`` list or ``--data`` pattern that cannot be trained."""


@dataclass(frozen=True)
class SymbolResult:
    """What a worker sends back: the run's numbers, its files and its log.

    Args:
        validation: the final model's metrics on the validation slice
            (:class:`trainer.evaluation.metrics.Metrics` as a dict), scored under the one
            evaluation spec.
        diagnostics: its convergence diagnostics there (the metadata's ``diagnostics``).
    """

    symbol: str
    num_timesteps: int
    validation: dict[str, Any]
    diagnostics: dict[str, Any]
    files: JobFiles

    @property
    def validation_return(self) -> float:
        return float(self.validation["total_return"])


def parse_symbols(text: str, category: str) -> list[str]:
    """``"BTCUSDT,ETH/USDT"`` -> ccxt symbols. A Bybit id (no ``/``) becomes the ``[exchange]
    category`` market: ``BTC/USDT:USDT`` for linear, ``BTC/USDT`` for spot.

    Raises:
        SymbolsError: an empty list, an id with no known quote currency, or a market twice.
    """
    symbols = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if "/" not in token:
            quote = next((q for q in QUOTES if token.upper().endswith(q) and len(token) > len(q)), None)
            if quote is None:
                raise SymbolsError(f"--symbols {token}: cannot tell base from quote; write it as BASE/QUOTE "
                                   f"(ccxt form, e.g. {token.upper()}/USDT), known quotes: {', '.join(QUOTES)}")
            base = token.upper()[: -len(quote)]
            symbols.append(f"{base}/{quote}:{quote}" if category == "linear" else f"{base}/{quote}")
        else:
            symbols.append(token)
    if not symbols:
        raise SymbolsError(f"--symbols {text!r}: no symbol given")
    ids = [Market(s, "1m").market_id for s in symbols]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise SymbolsError(f"--symbols {text}: {', '.join(twice)} given more than once (outputs are per symbol id)")
    return symbols


def symbol_settings(settings: Settings, symbol: str, *, shared: bool = False) -> Settings:
    """The single-symbol settings of ``symbol``: its own data file and test slice folder,
    and (unless ``shared``: one model for every symbol) its own model and log folders."""
    args = settings.train
    market_id = Market(symbol, args.timeframe).market_id
    data = args.data
    if data is not None:
        if SYMBOL_PLACEHOLDER not in str(data):
            raise SymbolsError(f"--data {data}: with --symbols, put {SYMBOL_PLACEHOLDER} in the path "
                               f"(e.g. data/{SYMBOL_PLACEHOLDER}_1m.csv.gz); it is replaced by the symbol id")
        data = Path(str(data).replace(SYMBOL_PLACEHOLDER, market_id))
    if args.resume is not None and not shared:
        raise SymbolsError("--resume continues one model; it cannot be combined with --symbols "
                           "(add --shared to continue a shared model)")
    update = {"symbol": symbol, "data": data, "progress": False,
              "test_data_path": args.test_data_path.parent / market_id / args.test_data_path.name}
    if shared:
        update["resume"] = None  # the shared run resumes its one model; no symbol has its own
    else:
        update |= {"save_path": args.save_path / market_id, "log_dir": args.log_dir / market_id}
    try:
        checked = type(args).model_validate(args.model_copy(update=update).model_dump())
    except ValidationError as exc:
        raise SymbolsError(f"--symbols {symbol}: {exc.errors()[0]['msg']}") from None
    return settings.model_copy(update={"train": checked})


def check_symbols(settings: Settings, symbols: list[str]) -> dict[str, Settings]:
    """Each symbol's own settings (:func:`symbol_settings`), checked: bad settings fail
    here, before any work.

    Raises:
        UserError: a flag that cannot work for one of the symbols.
    """
    per_symbol = {symbol: symbol_settings(settings, symbol) for symbol in symbols}
    for one in per_symbol.values():
        check_train_args(one)
    return per_symbol


def train_symbols(
    per_symbol: Mapping[str, Settings], backend: Backend, *, board: Board | None = None,
    exchange: OhlcvSource | None = None,
) -> dict[str, JobOutcome]:
    """Train one model per symbol on ``backend``; returns each symbol's outcome (a
    :class:`SymbolResult` or an error).

    Args:
        per_symbol: from :func:`check_symbols`.
    """
    symbols = list(per_symbol)
    board = board or Board("shadow train --symbols", value_label="validation return")
    for symbol in symbols:
        board.add(symbol)
    jobs: list[Job] = []
    outcomes: dict[str, JobOutcome] = {}
    for symbol, one in per_symbol.items():
        try:
            candles = load_training_candles(one.train, one, exchange)
        except UserError as exc:  # a missing file or a delisted symbol stops that symbol only
            outcomes[symbol] = JobOutcome(symbol, error=str(exc))
            board.finish(symbol, "failed", detail=str(exc))
            continue
        jobs.append(Job(symbol, train_in_scratch,
                        (one, backend.share(candles), latest_tensorboard_run(one.train.log_dir))))

    def on_finish(index: int, outcome: JobOutcome) -> None:
        outcomes[outcome.key] = outcome
        if outcome.ok:
            outcome.result.files.deliver(output_targets(per_symbol[outcome.key]))
            board.finish(outcome.key, "done", outcome.result.validation_return,
                         f"{outcome.result.num_timesteps} steps -> {per_symbol[outcome.key].train.save_path}")
        else:
            board.finish(outcome.key, "failed", detail=outcome.error_line)

    run_jobs(backend, lambda i: jobs[i] if i < len(jobs) else None, on_finish,
             on_start=lambda index, job: board.start(job.key))
    return {symbol: outcomes[symbol] for symbol in symbols}


def train_in_scratch(settings: Settings, candles: tuple[pd.DataFrame, str], latest_tb_run: int) -> SymbolResult:
    """Worker side: :func:`trainer.training.single_symbol.train` into a scratch folder, score the final model
    on the validation slice, and send the folder and the log back."""
    from trainer.training.single_symbol import train

    with scratch() as folder:
        in_scratch = folder.settings(settings)
        continue_tensorboard_numbering(in_scratch.train.log_dir, latest_tb_run)
        result = train(in_scratch, candles=candles)
        if result.final_model is None:
            raise RuntimeError(f"{settings.train.symbol}: training was interrupted")
        metrics = validation_metrics(result.final_model, result.split.validation.frame, settings)
        return SymbolResult(settings.train.symbol, result.num_timesteps, metrics.to_dict(),
                            load_metadata(result.final_model).diagnostics, folder.files())


def validation_metrics(model_zip: Path, frame: pd.DataFrame, settings: Settings) -> Metrics:
    """The model's deterministic policy over a validation slice, scored under the one
    evaluation spec (:class:`trainer.evaluation.backtest.EvaluationSpec`)."""
    from strategies.ppo import load_ppo_strategy
    from trainer.evaluation.backtest import EvaluationSpec

    model = load_ppo_strategy(model_zip, lookback_window=settings.env.lookback_window)
    (result,) = EvaluationSpec.from_settings(settings).compare([model], frame)
    return result.metrics


def validation_return(model_zip: Path, frame: pd.DataFrame, settings: Settings) -> float:
    """Total return of :func:`validation_metrics`."""
    return validation_metrics(model_zip, frame, settings).total_return
