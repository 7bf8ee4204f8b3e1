"""Debian's Chromium for the dashboard tests: where it is, how it starts, where screenshots go."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",  # the tests may run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """Debian's Chromium; missing, the test fails (it never downloads a browser)."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail(
            "chromium not found: run 'make test' (installs it as root) or 'apt-get install -y chromium'"
        )
    return binary
