"""Typed settings: defaults, a TOML file, ``SHADOW_*`` environment variables."""

from config.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
