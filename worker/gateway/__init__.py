"""The SSE gateway and live dashboard: `lcstream serve`."""

from lcstream.worker.gateway.app import create_app

__all__ = ["create_app"]
