"""Options and helpers shared by several command groups."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

# Piped or captured output is not cut to rich's 80-column default: tables stay readable in
# logs and files (an explicit COLUMNS still wins).
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)

ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", "-c", help="TOML settings file (default: $SHADOW_CONFIG).")
]
