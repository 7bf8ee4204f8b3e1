"""JSON log lines on stderr, in the shape `lcstream worker` writes them (`event`, `timestamp`)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any


def log(event: str, **fields: Any) -> None:
    """Write one line: `fields`, the `event` name and a UTC timestamp."""
    line = {**fields, "event": event, "timestamp": datetime.now(UTC).isoformat()}
    sys.stderr.write(json.dumps(line) + "\n")
    sys.stderr.flush()
