"""Structured logs: JSON lines when not on a terminal, readable lines when on one."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

LogFormat = Literal["auto", "json", "console"]


def configure_logging(level: str = "info", fmt: LogFormat = "auto") -> None:
    """Set up structlog for the process; every line carries a timestamp, level and event verb."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _renderer(fmt),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def route_stdlib_logger(name: str, level: str = "info", fmt: LogFormat = "auto") -> None:
    """Render a library's standard-library logger (arq's) like lcstream's own lines, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _renderer(fmt)],
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        )
    )
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def _renderer(fmt: LogFormat) -> structlog.typing.Processor:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    return structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
