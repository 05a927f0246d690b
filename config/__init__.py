"""Typed settings: defaults, a TOML file, ``SHADOW_*`` environment variables."""

from config.errors import UserError
from config.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "UserError", "load_settings"]
