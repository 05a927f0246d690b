"""Log set-up for every command: one line per event on stderr, journald- and docker-friendly.

Three formats (``[service] log_format`` / ``--log-format``):

- ``text``: ``2024-03-01 12:00:00,123 INFO    bot.daemon: run 3: serving BTCUSDT`` for people;
- ``json``: one JSON object per line (``time`` in UTC ISO-8601, ``level``, ``logger``,
  ``message``, ``exc_info`` and any ``extra=`` fields) for log shippers (Loki, ELK, ...);
- ``journal``: ``<4>bot.bybit.ws: websocket silent ...``: the ``<N>`` prefix is the syslog
  priority, which journald reads from a service's stderr, so ``journalctl -p warning``
  works; no timestamp, journald adds its own.

Optionally the same lines also go to a file (``[service] log_file`` for the service,
``ppo_training.log`` for the trainer), rotated by size. The file (and its folder) is created
with the first line logged, so a command refused before it starts work leaves no file.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from config.errors import UserError
from config.paths import check_creatable

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_FORMATS: tuple[str, ...] = ("text", "json", "journal")
NOISY_LOGGERS: tuple[str, ...] = ("aiohttp.access", "websockets", "matplotlib")
_OURS = "_shadow_handler"  # marks the handlers configure_logging installed (pytest's and others' stay)

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


class DeferredFileHandler(logging.handlers.RotatingFileHandler):
    """A size-rotated log file that is created, folder included, with its first line."""

    def __init__(self, path: Path, *, max_mb: float, backups: int) -> None:
        super().__init__(path, maxBytes=int(max_mb * 1024 * 1024), backupCount=backups, encoding="utf-8", delay=True)

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None:  # the first line: the file opens now
            Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        super().emit(record)


def configure_logging(level: str = "INFO", log_format: str = "text", *, log_file: Path | None = None,
                      max_mb: float = 50.0, backups: int = 5) -> None:
    """Send every log line to stderr (and to ``log_file``, rotated at ``max_mb``; 0: never)
    in ``log_format``. Replaces the handlers an earlier call installed, and only those.

    Raises:
        UserError: an unknown level or format, or a log file that cannot be opened.
    """
    formatter = make_formatter(log_format)
    if not isinstance(logging.getLevelName(level.upper()), int):
        raise UserError(f"--log-level {level!r}: use DEBUG, INFO, WARNING or ERROR")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        check_creatable(log_file, "log file")
        handlers.append(DeferredFileHandler(log_file, max_mb=max_mb, backups=backups))
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        setattr(handler, _OURS, True)
        root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)

