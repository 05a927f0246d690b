"""Options and helpers shared by several command groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console()

ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", "-c", help="TOML settings file (default: $SHADOW_CONFIG).")
]
