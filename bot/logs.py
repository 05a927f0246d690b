"""Log set-up for the service: one line per event on stderr, journald- and docker-friendly.

Three formats (``[service] log_format`` / ``--log-format``):

- ``text``: ``2024-03-01 12:00:00,123 INFO    bot.daemon: run 3: serving BTCUSDT`` for people;
- ``json``: one JSON object per line (``time`` in UTC ISO-8601, ``level``, ``logger``,
  ``message``, ``exc_info`` and any ``extra=`` fields) for log shippers (Loki, ELK, ...);
- ``journal``: ``<4>bot.bybit.ws: websocket silent ...``: the ``<N>`` prefix is the syslog
  priority, which journald reads from a service's stderr, so ``journalctl -p warning``
  works; no timestamp, journald adds its own.

Optionally the same lines also go to a file rotated by size (``[service] log_file``).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from config.errors import UserError

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_FORMATS: tuple[str, ...] = ("text", "json", "journal")
NOISY_LOGGERS: tuple[str, ...] = ("aiohttp.access", "websockets", "matplotlib")

# syslog priorities (sd-daemon(3)): what journald makes of a "<N>" prefix
_JOURNAL_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``; every line of a traceback gets the prefix too, so
    journald keeps it as one entry's priority instead of logging it as INFO."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = _JOURNAL_PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


def make_formatter(log_format: str) -> logging.Formatter:
    """The formatter of one of :data:`LOG_FORMATS`.

    Raises:
        UserError: an unknown format name.
    """
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    if log_format == "journal":
        return JournalFormatter()
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter("{levelname}{name}{message}", style="{", timestamp="time",
                             rename_fields={"levelname": "level", "name": "logger"})
    raise UserError(f"--log-format {log_format!r}: use one of {', '.join(LOG_FORMATS)}")


def configure_logging(level: str = "INFO", log_format: str = "text", *, log_file: Path | None = None,
                      max_mb: float = 50.0, backups: int = 5) -> None:
    """Send every log line to stderr (and to a size-rotated ``log_file``) in ``log_format``.

    Raises:
        UserError: an unknown level or format, or a log file that cannot be opened.
    """
    formatter = make_formatter(log_format)
    if not isinstance(logging.getLevelName(level.upper()), int):
        raise UserError(f"--log-level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.handlers.RotatingFileHandler(
                log_file, maxBytes=int(max_mb * 1024 * 1024), backupCount=backups, encoding="utf-8"))
        except OSError as exc:
            raise UserError(f"log file {log_file}: cannot open it ({exc.strerror or exc})") from None
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
