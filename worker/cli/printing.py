"""How the commands that look at messages show them: frames as they come, outcomes compared."""

from __future__ import annotations

import orjson
from rich.console import Console

from lcstream.streams.frames import Frame, FrameKind, Outcome
from lcstream.worker.engine.handler import GIVEN_UP_REASONS


class TailPrinter:
    """Writes frames to the terminal as they come: reasoning dim, text plain, tool calls as calls."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._section: tuple[FrameKind, int] | None = None

    def show(self, frame: Frame) -> None:
        kind, data = frame.kind, frame.data
        if kind is FrameKind.START:
            self._console.print(f"[bold cyan]{data['message_id']}[/] started", highlight=False)
        elif kind in (FrameKind.TEXT, FrameKind.REASONING):
            self._enter((kind, 0), "[dim]thinking:[/] " if kind is FrameKind.REASONING else "")
            style = "dim italic" if kind is FrameKind.REASONING else ""
            self._console.print(data, end="", style=style, highlight=False, markup=False)
        elif kind is FrameKind.TOOL_CALL_CHUNK:
            index = data.get("index", 0)
            self._enter((kind, index), f"[blue]-> {data.get('name') or '?'}[/]")
            self._console.print(data.get("args") or "", end="", style="blue", highlight=False, markup=False)
        elif kind is FrameKind.OUTPUT:
            usage = data["data"].get("usage_metadata")
            self._end()
            self._console.print(f"[green]completed[/] usage={usage}", highlight=False)
        else:
            self._end()
            self._console.print(f"[red]failed ({data['code']})[/]: {data['message']}", highlight=False)

    def interrupt(self) -> None:
        """Close the line being written (another message's frames follow)."""
        self._end()

    def _enter(self, section: tuple[FrameKind, int], header: str) -> None:
        if section != self._section:
            self._end()
            if header:
                self._console.print(header, end=" " if section[0] is FrameKind.TOOL_CALL_CHUNK else "")
            self._section = section

    def _end(self) -> None:
        if self._section is not None:
            self._console.print()
            self._section = None


def compare_outcomes(rebuilt: Outcome | None, stored: Outcome | None) -> str:
    """equal, different, absent (nothing stored), or given up (failed for a reason outside the events)."""
    if stored is None:
        return "absent"
    if stored.error is not None and stored.error["code"] in GIVEN_UP_REASONS:
        return "given up"
    if rebuilt is not None and orjson.loads(rebuilt.to_json()) == orjson.loads(stored.to_json()):
        return "equal"
    return "different"
