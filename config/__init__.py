"""lcstream settings: one validated model, from environment and an optional TOML file."""

from config.settings import Settings, load_settings, redact_url

__all__ = ["Settings", "load_settings", "redact_url"]
