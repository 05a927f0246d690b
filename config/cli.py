"""The command line that ``shadow`` and the trainer's scripts share.

- **Options bound to a setting** (:func:`setting_option`): the flag's help and shown
  default come from the settings field, and a value given on the command line overrides
  that field in :func:`command_settings`, which also tells :func:`config.load_settings`
  which flag gave it, so an invalid value is blamed on that flag.
- **The shared options:** the one ``--config``, ``--db``, ``--backend``, ``--workers``,
  ``--ray-address``, ``--log-level``.
- **Exit codes and errors:** :func:`run_app` runs a typer app so that every mistake a user
  can fix (an unknown flag, a missing option, a bad value, a bad file or setting: any
  :class:`config.errors.UserError`) prints exactly one line, ``error: ...``, on stderr,
  unwrapped whatever the terminal, and exits with :data:`EXIT_USER_ERROR`; anything else is
  a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic.fields import FieldInfo
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from config.errors import UserError, clause, one_line
from config.settings import CONFIG_PATH_VARIABLE, Settings, load_settings

EXIT_OK = 0
EXIT_FAILED = 1
"""The command ran and something it did failed (a doctor check, a retrain, a daemon stop)."""
EXIT_USER_ERROR = 2
"""A mistake the user can fix; nothing was done."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT), after saving what could be saved."""

_FLAGS = "shadow.flags"  # ctx.meta: dotted setting -> (flag, value) of each setting option given
_CONFIG = "shadow.config"  # ctx.meta: the --config path, when given

_error_console = Console(stderr=True, soft_wrap=True, highlight=False)


def _click_error(name: str) -> type[Exception]:
    """A click exception class, found from typer's public ``BadParameter``: typer vendors
    click from 0.26 on, so ``import click`` would name other classes."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


UsageError = _click_error("UsageError")
ClickException = _click_error("ClickException")


def setting_option(setting: str, *param_decls: str, help: str | None = None,
                   convert: Callable[[Any], Any] | None = None, **option: Any) -> Any:
    """A typer option that sets ``setting`` (a dotted field such as ``"train.n_envs"``).

    Left out, the setting keeps its value from the file, the environment or its default;
    given, it overrides them (see :func:`command_settings`).

    Args:
        setting: the field, ``section.name``.
        param_decls: the flag names (default: ``--name`` after the parameter, typer's rule).
        help: what the flag does (default: the field's description); the field's default is
            appended unless it is None (those descriptions say what None means).
        convert: applied to the given value first (``"A,B"`` -> ``["A", "B"]``).
        option: passed on to :func:`typer.Option`.
    """
    info = settings_field(setting)
    text = help or info.description or ""
    if info.default not in (None, ()):
        text += f" (default: {_show(info.default)})"

    def remember(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if value is None:  # not given
            return value
        value = convert(value) if convert is not None else value
        ctx.meta.setdefault(_FLAGS, {})[setting] = (flag_name(param), value)
        return value

    return typer.Option(*param_decls, help=escape(text), show_default=False, callback=remember, **option)


def settings_field(setting: str) -> FieldInfo:
    """The pydantic field of a dotted setting name (``"compute.workers"``)."""
    model: Any = Settings
    *sections, name = setting.split(".")
    for section in sections:
        model = model.model_fields[section].annotation
    field: FieldInfo = model.model_fields[name]
    return field


def _show(value: Any) -> str:
    """A default as a user types it: ``BTC/USDT``, ``64``, ``models/x``, ``64,64``."""
    if isinstance(value, list | tuple):
        return ",".join(_show(v) for v in value)
    return str(value)


def _remember_config(ctx: typer.Context, value: Path | None) -> Path | None:
    if value is not None:
        ctx.meta[_CONFIG] = value
    return value


ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help=f"TOML settings file (default: ${CONFIG_PATH_VARIABLE}).", callback=_remember_config,
)]
DbOption = Annotated[Path | None, setting_option("ledger.db_path", "--db", help="ledger file")]
AccountOption = Annotated[str | None, typer.Option("--account", "-a", help="Only this paper account, e.g. main.")]
HttpPublicOption = Annotated[bool | None, setting_option("service.http_public", "--http-public/--no-http-public")]
BackendOption = Annotated[str | None, setting_option("compute.backend")]
WorkersOption = Annotated[int | None, setting_option("compute.workers")]
RayAddressOption = Annotated[str | None, setting_option("compute.ray_address")]
LogLevelOption = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]


def command_settings(ctx: typer.Context, **fixed: dict[str, Any]) -> Settings:
    """The settings a command works with: defaults < the ``--config`` file (or
    ``$SHADOW_CONFIG``) < ``SHADOW_*`` variables < the setting options given.

    Args:
        ctx: the command's context (the options given are recorded in it).
        fixed: section values the command itself sets (``train={"progress": False}``);
            a flag given for the same field wins.

    Raises:
        ConfigError: an invalid value, named with the flag, variable or file that gave it.
    """
    overrides = {section: dict(values) for section, values in fixed.items()}
    given: dict[str, tuple[str, Any]] = ctx.meta.get(_FLAGS, {})
    for setting, (_, value) in given.items():
        *sections, name = setting.split(".")
        node = overrides
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    return load_settings(ctx.meta.get(_CONFIG), flag_names={s: flag for s, (flag, _) in given.items()}, **overrides)


def flag_name(param: typer.CallbackParam) -> str:
    """How a user spells ``param``: its long flag (``--n-envs``), or its name (``VERSION``)."""
    if param.param_type_name == "argument":
        return param.metavar or (param.name or "").upper()
    long = [o for o in param.opts if o.startswith("--")]
    return long[0] if long else param.opts[0]


def split_list(value: str) -> list[str]:
    """``"BTCUSDT, ETHUSDT"`` -> ``["BTCUSDT", "ETHUSDT"]`` (for comma-separated flags)."""
    return [item.strip() for item in value.split(",") if item.strip()]


def print_error(message: str) -> None:
    """``error: message`` on stderr as ONE line, never wrapped (a pipe, a file, journald and
    an 80-column terminal all get one line; a terminal folds it for the eye only)."""
    _error_console.print(Text.assemble(("error:", "bold red"), " ", one_line(message)))


def usage_message(exc: Exception, program: str) -> str:
    """A click usage error as one line naming the command, the flag and what it accepts:
    ``shadow export: missing option --table: table or view, e.g. trades (see shadow export --help)``.

    Args:
        exc: the usage error.
        program: the command's name, when the error does not know it.
    """
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else program
    param = getattr(exc, "param", None)
    if type(exc).__name__ == "MissingParameter" and param is not None:
        accepts = clause(getattr(param, "help", None) or "")
        text = f"missing {param.param_type_name} {flag_name(param)}" + (f": {accepts}" if accepts else "")
    else:
        # click's classes are found at run time (typer vendors click privately): typed as Exception here
        text = clause(exc.format_message())  # type: ignore[attr-defined]
    return f"{command}: {text} (see {command} --help)"


def run_app(app: typer.Typer, args: Sequence[str] | None = None, prog_name: str | None = None) -> NoReturn:
    """Run ``app`` as a program and exit: 0 when it succeeds, its own status
    (:data:`EXIT_FAILED`, :data:`EXIT_INTERRUPTED`) when it says so, and
    :data:`EXIT_USER_ERROR` after one ``error:`` line for any mistake a user can fix."""
    try:
        status = app(args=args, prog_name=prog_name, standalone_mode=False)
    except UsageError as exc:
        if type(exc).__name__ != "NoArgsIsHelpError":
            print_error(usage_message(exc, prog_name or Path(sys.argv[0]).name))
            sys.exit(EXIT_USER_ERROR)
        status = app(args=["--help"], prog_name=prog_name, standalone_mode=False)  # nothing asked: the help
    except ClickException as exc:  # e.g. a file click could not open
        print_error(exc.format_message())  # type: ignore[attr-defined]  # a click exception (see above)
        sys.exit(EXIT_USER_ERROR)
    except typer.Abort:
        print_error("aborted")
        sys.exit(EXIT_FAILED)
    except UserError as exc:
        print_error(str(exc))
        sys.exit(EXIT_USER_ERROR)
    sys.exit(status if isinstance(status, int) else EXIT_OK)

