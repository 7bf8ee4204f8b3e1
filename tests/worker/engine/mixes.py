"""Realistic mixes of work for the worker: valid messages beside poison beside dead producers.

Every planned message knows what must become of it: a valid one its events (the
oracle runs them in-process), a poison one the reason it must fail with, a dead
producer that it ends `idle_timeout`. Entries are written raw, so poison reaches
Redis exactly as a broken producer would write it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models._compat_bridge import chunks_to_events
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from lcstream.streams.events import now_ms
from lcstream.streams.keys import Keyspace
from lcstream.worker.demo.models import reasoning_chunks, tool_call_chunks, usage_chunk

# The settings a mix is run with: poison `too_large` is measured against this.
MAX_EVENT_BYTES = 16_384

Entry = tuple[str, dict[str, bytes]]


@dataclass(frozen=True)
class Planned:
    """One message of a mix and what must become of it."""

    message_id: str
    kind: str  # "valid", "poison" or "dead" (a producer that went silent, maybe before its first event)
    entries: list[Entry]
    events: list[dict[str, Any]]  # the valid events (all of them, for a valid message)
    reason: str | None = None  # the failure code a poison or dead message must end with
    silent_since_ms: int = 0  # a dead producer's last sign of life: its last event, or its announcement
    dispatch: dict[str, str] = field(default_factory=dict)  # dispatch entry fields besides `m`
    squatted: bool = False  # E(M) is a string, not a stream


def valid_events(message_id: str, rng: random.Random) -> list[dict[str, Any]]:
    """A message as langchain-core's `chunks_to_events` makes it: text, sometimes reasoning and tool calls."""
    chunks: list[AIMessageChunk] = []
    if rng.random() < 0.3:
        chunks += reasoning_chunks(" ".join(f"r{i}" for i in range(rng.randint(2, 12))))
    chunks += [AIMessageChunk(content=f"{message_id[-4:]}-{i} ") for i in range(rng.randint(1, 60))]
    if rng.random() < 0.3:
        args = json.dumps({"query": message_id, "page": rng.randint(1, 9)})
        chunks += tool_call_chunks("search", f"call-{message_id}", args, pieces=rng.randint(1, 6))
    if rng.random() < 0.15:
        first = tool_call_chunks("a", f"call-{message_id}-a", '{"x": 1}', index=0, pieces=3)
        second = tool_call_chunks("b", f"call-{message_id}-b", '{"y": 2}', index=1, pieces=3)
        for a, b in zip(first, second, strict=True):
            chunks += [a, b]
    chunks.append(usage_chunk(rng.randint(1, 50), len(chunks)))
    generations = iter([ChatGenerationChunk(message=chunk) for chunk in chunks])
    return [dict(event) for event in chunks_to_events(generations, message_id=message_id)]


def _entries(events: list[dict[str, Any]], time_ms: int) -> list[Entry]:
    return [
        (f"0-{n}", {"e": json.dumps(event).encode(), "t": str(time_ms).encode()})
        for n, event in enumerate(events, start=1)
    ]


def _renumber(raws: list[bytes], time_ms: int) -> list[Entry]:
    return [(f"0-{n}", {"e": raw, "t": str(time_ms).encode()}) for n, raw in enumerate(raws, start=1)]


POISON_KINDS = (
    "invalid_json",
    "gap",
    "duplicate_start",
    "missing_start",
    "invalid_shape",
    "too_large",
    "after_terminal",
    "dispatch_failed",
    "missing_field",
)


def poison(message_id: str, kind: str, rng: random.Random, time_ms: int) -> Planned:
    """A message whose entries break one rule at a random point after some valid events."""
    events = valid_events(message_id, rng)
    raws = [json.dumps(event).encode() for event in events]
    at = rng.randint(1, len(raws) - 1)  # keep message-start; break somewhere after it
    if kind == "invalid_json":
        raws[at] = b'{"event": "content-block-delta", "index": '
    elif kind == "invalid_shape":
        raws[at] = b'{"event": "content-block-delta", "index": true, "delta": {"type": "text-delta"}}'
    elif kind == "too_large":
        raws[at] = json.dumps({"event": "x-note", "pad": "a" * MAX_EVENT_BYTES}).encode()
    elif kind == "duplicate_start":
        raws.insert(at, raws[0])
    elif kind == "missing_start":
        raws = raws[1:]
    elif kind == "after_terminal":
        raws.append(raws[-2] if len(raws) > 2 else raws[-1])
    elif kind == "dispatch_failed":  # a cache-hit replay's usage that langchain-core refuses
        raws[-1] = json.dumps({"event": "message-finish", "usage": {"total_cost": 0}}).encode()
    entries = _renumber(raws, time_ms)
    if kind == "gap":
        entries = entries[:at] + [
            (f"0-{n + 1}", fields) for n, (_, fields) in enumerate(entries[at:], at + 1)
        ]
    elif kind == "missing_field":
        entries[at] = (entries[at][0], {"x": b"no event here"})
    return Planned(message_id, "poison", entries, events, reason=kind)


def dead_producer(message_id: str, rng: random.Random, time_ms: int) -> Planned:
    """A producer that died after 0-40 events, before `message-finish` (0: it announced first)."""
    events = valid_events(message_id, rng)[:-1]
    events = events[: rng.randint(0, min(40, len(events)))]
    return Planned(message_id, "dead", _entries(events, time_ms), events, "idle_timeout", time_ms)


def hostile(message_id: str, rng: random.Random, time_ms: int) -> Planned:
    """A message failed for what surrounds its events: a squatted `E(M)`, or a bad `ns`, `node` or `run`."""
    events = valid_events(message_id, rng)
    entries = _entries(events, time_ms)
    if rng.random() < 0.5:
        return Planned(message_id, "poison", entries, events, "wrong_type", squatted=True)
    bad = rng.choice([{"ns": "not json"}, {"ns": '["a", 1]'}, {"node": "n" * 300}, {"run": "r{1}"}])
    return Planned(message_id, "poison", entries, events, "invalid_dispatch", dispatch=bad)


def plan_mix(run: str, rng: random.Random, *, valid: int, poisoned: int, dead: int) -> list[Planned]:
    """`valid` + `poisoned` + `dead` messages in random order; poison kinds drawn at random."""
    time_ms = now_ms()
    kinds = ["valid"] * valid + ["poison"] * poisoned + ["dead"] * dead
    rng.shuffle(kinds)
    planned: list[Planned] = []
    for n, kind in enumerate(kinds):
        message_id = f"{run}-{kind}-{n}"
        if kind == "valid":
            events = valid_events(message_id, rng)
            planned.append(Planned(message_id, "valid", _entries(events, time_ms), events))
        elif kind == "poison" and rng.random() < 0.15:
            planned.append(hostile(message_id, rng, time_ms))
        elif kind == "poison":
            planned.append(poison(message_id, rng.choice(POISON_KINDS), rng, time_ms))
        else:
            planned.append(dead_producer(message_id, rng, time_ms))
    return planned


async def write_mix(redis: Redis, planned: list[Planned], keyspace: Keyspace) -> None:
    """Write every message's entries, then announce them all in plan order."""
    pipe = redis.pipeline(transaction=False)
    for message in planned:
        keys = keyspace.message(message.message_id)
        if message.squatted:
            pipe.set(keys.events, "squatted")
            continue
        for entry_id, fields in message.entries:
            pipe.xadd(keys.events, fields, id=entry_id)  # type: ignore[arg-type]
    for message in planned:
        keys = keyspace.message(message.message_id)
        announcement: dict[FieldT, EncodableT] = {"m": message.message_id}
        announcement.update(message.dispatch)
        pipe.xadd(keys.dispatch, announcement)
    await pipe.execute()
