"""lcstream's settings: one validated model, from the environment and an optional TOML file."""

if __name__ != "lcstream.config":  # the repository root is on sys.path in development: one name per module
    raise ImportError(f"import lcstream.config, not {__name__}: lcstream's modules have one name each")

from lcstream.config.settings import Settings, load_settings, redact_url

__all__ = ["Settings", "load_settings", "redact_url"]
