"""The workloads of issue 6 and their sizes (full, and `--quick` for a smoke run)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.benchmarks.messages import Event, backlog_message, text_message_events, tool_call_message

WORKLOAD_NAMES = ("backlog", "sharing", "paced", "tools", "long", "rss", "redis")


@dataclass(frozen=True)
class Preloaded:
    """Messages written in full before the workers start."""

    name: str
    messages: int
    build: Callable[[str, int], list[Event]]  # (message id, n) -> that message's events
    shape: str  # for the report, e.g. "200 messages x 500 tokens"
    two_workers: bool = False

    def message_ids(self) -> list[str]:
        return [f"{self.name}-{n}" for n in range(self.messages)]

    def events(self) -> list[list[Event]]:
        """Every message's events, in `message_ids()` order."""
        return [self.build(m, n) for n, m in enumerate(self.message_ids())]


def backlog(messages: int, tokens: int, name: str = "backlog") -> Preloaded:
    """Text messages through `chunks_to_events`, as tests/integration/test_backlog.py builds them."""
    return Preloaded(
        name,
        messages,
        lambda m, n: backlog_message(m, n, tokens),
        f"{messages} messages x {tokens} tokens",
        two_workers=True,
    )


def tools(messages: int, calls: int) -> Preloaded:
    """Text, `calls` parallel tool calls with arguments streamed 4 characters at a time, text."""
    return Preloaded(
        "tools",
        messages,
        lambda m, n: tool_call_message(m, n, tools=calls),
        f"{messages} messages x {calls} tools",
    )


def long(messages: int, tokens: int) -> Preloaded:
    """A few very long text messages."""
    return Preloaded(
        "long",
        messages,
        lambda m, n: text_message_events(m, [f"m{n}t{i} " for i in range(tokens)]),
        f"{messages} messages x {tokens} tokens",
    )


def paced_message_ids(messages: int) -> list[str]:
    """The ids the paced generator writes and the subscriber listens to."""
    return [f"paced-{n}" for n in range(messages)]


@dataclass(frozen=True)
class Paced:
    """`messages` concurrent messages at `tokens_per_s` each, for `duration_s`."""

    messages: int
    tokens_per_s: float
    duration_s: float
    drain_s: float  # how long after the generator ends a worker may take to finish

    @property
    def name(self) -> str:
        return f"paced-{self.messages}"

    @property
    def target_events_per_s(self) -> float:
        return self.messages * self.tokens_per_s

    @property
    def shape(self) -> str:
        return f"{self.messages} messages x {self.tokens_per_s:g} tokens/s, {self.duration_s:g} s"

    def message_ids(self) -> list[str]:
        return paced_message_ids(self.messages)


@dataclass(frozen=True)
class OpenMessages:
    """`messages` messages held open (no `message-finish`) with `tokens` tokens each."""

    messages: int
    tokens: int

    name = "rss"


@dataclass(frozen=True)
class Plan:
    """Everything one run measures."""

    backlog: Preloaded
    sharing: tuple[Preloaded, ...]  # two workers started together on each, `sharing_runs` times
    sharing_runs: int
    paced: tuple[Paced, ...]
    tools: Preloaded
    long: Preloaded
    rss: OpenMessages
    redis_requests: int  # per redis-benchmark run
    sample: int  # messages per run whose outcome is compared with the in-process oracle
    repeat: int  # runs of each system on a preloaded workload; the median one is reported


def full_plan() -> Plan:
    """The sizes of issue 6 (about 8 minutes on 2 cores)."""
    return Plan(
        backlog=backlog(200, 500),
        sharing=(backlog(100, 500, "sharing-100"), backlog(1000, 500, "sharing-1000")),
        sharing_runs=5,
        paced=tuple(Paced(n, 50.0, duration_s=10.0, drain_s=10.0) for n in (100, 500, 1000)),
        tools=tools(300, 3),
        long=long(5, 20_000),
        rss=OpenMessages(messages=1000, tokens=2000),
        redis_requests=300_000,
        sample=10,
        repeat=3,
    )


def quick_plan() -> Plan:
    """Smaller sizes for a smoke run (about a minute and a half)."""
    return Plan(
        backlog=backlog(100, 300),
        sharing=(backlog(100, 300, "sharing-100"), backlog(1000, 100, "sharing-1000")),
        sharing_runs=3,
        paced=tuple(Paced(n, 50.0, duration_s=3.0, drain_s=5.0) for n in (100, 500, 1000)),
        tools=tools(100, 3),
        long=long(2, 10_000),
        rss=OpenMessages(messages=200, tokens=500),
        redis_requests=50_000,
        sample=5,
        repeat=1,
    )
