"""Tests of streams/frames.py: the pure core against the conformance fixtures and langchain-core itself."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.language_models._compat_bridge import chunks_to_events
from langchain_core.language_models.chat_model_stream import AsyncChatModelStream, ChatModelStream
from langchain_core.messages import AIMessageChunk, message_to_dict
from langchain_core.messages.tool import ToolCallChunk
from langchain_core.outputs import ChatGenerationChunk

from lcstream.streams.events import Event, EventLimits, decode_event, encode_event
from lcstream.streams.frames import TERMINAL_KINDS, Frame, FrameKind, MessageAssembler, Outcome
from lcstream.streams.ordering import EventOrder
from tests.conftest import conformance_cases

CASES = conformance_cases()
DELTA_KINDS = (FrameKind.TEXT, FrameKind.REASONING, FrameKind.TOOL_CALL_CHUNK)
EXPECTED_KEY = {
    FrameKind.TEXT: "text_deltas",
    FrameKind.REASONING: "reasoning_deltas",
    FrameKind.TOOL_CALL_CHUNK: "tool_call_chunks",
}
MESSAGE_ID = "lc_run--prop"


def deltas(frames: Iterable[Frame], kind: FrameKind) -> list[Any]:
    return [frame.data for frame in frames if frame.kind is kind]


def case_by_name(name: str) -> dict[str, Any]:
    return next(case for case in CASES if case["name"] == name)


# -- (a) conformance fixtures ---------------------------------------------------------------


def test_the_conformance_fixtures_cover_success_and_failure() -> None:
    assert len(CASES) >= 9
    assert any("error" in case["expected"] for case in CASES)
    assert any("output" in case["expected"] for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_conformance_case(case: dict[str, Any]) -> None:
    expected = case["expected"]
    assembler = MessageAssembler(case["message_id"])
    frames = assembler.feed_all(case["events"])

    assert [frame.seq for frame in frames] == list(range(1, len(frames) + 1))
    assert assembler.last_seq == len(frames)
    assert frames[0].kind is FrameKind.START
    assert frames[0].data["message_id"] == case["message_id"]
    assert [frame.kind for frame in frames].count(FrameKind.START) == 1
    for kind in DELTA_KINDS:
        assert deltas(frames, kind) == expected[EXPECTED_KEY[kind]], kind
    assert [frame.kind in TERMINAL_KINDS for frame in frames] == [False] * (len(frames) - 1) + [True]

    last = frames[-1]
    outcome = assembler.outcome
    assert outcome is not None
    if "output" in expected:
        assert last.kind is FrameKind.OUTPUT
        assert last.data == expected["output"]
        assert outcome.status == "completed"
        assert outcome.message == expected["output"]
        assert outcome.error is None
    else:
        assert last.kind is FrameKind.ERROR
        assert last.data["message"] == expected["error"]
        assert outcome.status == "failed"
        assert outcome.error == last.data
        assert outcome.message is None


def test_error_mid_stream_keeps_the_events_code() -> None:
    case = case_by_name("error_mid_stream")
    frames = MessageAssembler(case["message_id"]).feed_all(case["events"])
    assert case["events"][-1]["code"] == "overloaded"
    assert frames[-1].data == {"message": case["expected"]["error"], "code": "overloaded"}


def test_start_frame_carries_namespace_node_and_metadata() -> None:
    case = case_by_name("whole_message_replay")
    assembler = MessageAssembler(case["message_id"], namespace=["graph", "agent:1"], node="agent")
    start = assembler.feed_all(case["events"])[0]
    assert start == Frame(
        1,
        FrameKind.START,
        {
            "message_id": case["message_id"],
            "namespace": ["graph", "agent:1"],
            "node": "agent",
            "metadata": case["events"][0]["metadata"],
        },
    )


def test_start_frame_defaults() -> None:
    frames = MessageAssembler("msg_01X").feed({"event": "message-start", "role": "ai", "id": "msg_01X"})
    assert frames == [
        Frame(1, FrameKind.START, {"message_id": "msg_01X", "namespace": [], "node": None, "metadata": None})
    ]


def test_feed_all_stops_at_the_end_of_the_message() -> None:
    case = case_by_name("plain_text")
    assembler = MessageAssembler(case["message_id"])
    frames = assembler.feed_all([*case["events"], {"event": "content-block-delta", "index": 0}])
    assert frames[-1].kind is FrameKind.OUTPUT
    with pytest.raises(RuntimeError, match="already ended"):
        assembler.feed({"event": "message-finish"})


# -- (b) property: the frames are what langchain-core's own stream yields --------------------

UNICODE = st.characters(codec="utf-8")  # no lone surrogates: events are JSON
tokens = st.text(alphabet=UNICODE, max_size=6)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(alphabet=UNICODE, max_size=4),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def tool_args(draw: st.DrawFn) -> str:
    """Arguments of one call: valid JSON objects, or broken ones, as a model might stream them."""
    valid = json.dumps(draw(st.dictionaries(st.text(alphabet=UNICODE, max_size=4), json_values, max_size=3)))
    return draw(
        st.sampled_from(
            [
                valid,
                valid[: max(0, len(valid) - 1)],  # truncated: invalid
                valid + "}",  # trailing garbage: invalid
                "",
                "not json",
            ]
        )
    )


@st.composite
def split(draw: st.DrawFn, text: str) -> list[str]:
    """`text` cut into 1-4 consecutive pieces (some possibly empty)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=3)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@st.composite
def interleave(draw: st.DrawFn, streams: Sequence[Sequence[Any]]) -> list[Any]:
    """The items of all `streams` merged in a random order that keeps each stream's own order."""
    labels = [n for n, items in enumerate(streams) for _ in items]
    order = draw(st.permutations(labels))
    positions = [0] * len(streams)
    merged = []
    for n in order:
        merged.append(streams[n][positions[n]])
        positions[n] += 1
    return merged


@st.composite
def tool_call_chunk_lists(draw: st.DrawFn) -> list[list[ToolCallChunk]]:
    """0-3 tool calls (parallel when more than one); each item: the tool_call_chunks of one chunk."""
    calls = draw(st.integers(0, 3))
    per_call: list[list[ToolCallChunk]] = []
    for index in range(calls):
        pieces = draw(split(draw(tool_args())))
        name = draw(st.sampled_from(["search", "lookup", "get_weather"]))
        per_call.append(
            [
                ToolCallChunk(
                    type="tool_call_chunk",
                    name=name if n == 0 else None,
                    id=f"call_{index}" if n == 0 else None,
                    args=piece,
                    index=index,
                )
                for n, piece in enumerate(pieces)
            ]
        )
    merged = draw(interleave(per_call))
    # Sometimes two calls' pieces ride in one chunk, as parallel streaming providers send them.
    grouped: list[list[ToolCallChunk]] = []
    for item in merged:
        joins = bool(grouped) and all(other["index"] != item["index"] for other in grouped[-1])
        if joins and draw(st.booleans()):
            grouped[-1].append(item)
            continue
        grouped.append([item])
    return grouped


@st.composite
def content_chunks(draw: st.DrawFn) -> AIMessageChunk:
    """A text token or a reasoning block."""
    if draw(st.booleans()):
        return AIMessageChunk(content=draw(tokens))
    index = draw(st.sampled_from(["r0", "r1", "lc_rs_305f30"]))
    return AIMessageChunk(content=[{"type": "reasoning", "reasoning": draw(tokens), "index": index}])


@st.composite
def chunk_sequences(draw: st.DrawFn) -> list[AIMessageChunk]:
    content = draw(st.lists(content_chunks(), max_size=12))
    tools = [AIMessageChunk(content="", tool_call_chunks=calls) for calls in draw(tool_call_chunk_lists())]
    chunks: list[AIMessageChunk] = draw(interleave([content, tools]))
    if not chunks:
        chunks = [AIMessageChunk(content="")]
    decorated = []
    for chunk in chunks:
        updates: dict[str, Any] = {}
        if draw(st.integers(0, 4)) == 0:
            input_tokens, output_tokens = draw(st.integers(0, 50)), draw(st.integers(0, 50))
            updates["usage_metadata"] = {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            }
        if draw(st.integers(0, 4)) == 0:
            metadata: dict[str, Any] = {"model_name": draw(st.sampled_from(["model-a", "model-b"]))}
            if draw(st.booleans()):
                metadata["model_provider"] = "fake"
            if draw(st.booleans()):
                metadata["finish_reason"] = "stop"
            updates["response_metadata"] = metadata
        decorated.append(chunk.model_copy(update=updates) if updates else chunk)
    return decorated


@st.composite
def protocol_messages(draw: st.DrawFn) -> list[Event]:
    """The events `chunks_to_events` makes of random chunks; sometimes cut short by an `error` event."""
    chunks = draw(chunk_sequences())
    events: list[Event] = [
        dict(event)
        for event in chunks_to_events(
            iter([ChatGenerationChunk(message=chunk) for chunk in chunks]), message_id=MESSAGE_ID
        )
    ]
    if draw(st.integers(0, 3)) == 0:
        cut = draw(st.integers(1, len(events) - 1))
        error: Event = {"event": "error", "message": draw(st.text(alphabet=UNICODE, max_size=10))}
        code = draw(st.none() | st.sampled_from(["overloaded", "rate_limited"]))
        if code is not None:
            error["code"] = code
        events = [*events[:cut], error]
    return events


@dataclass
class Reference:
    """What an in-process `AsyncChatModelStream` yields, read through its public API only."""

    deltas: dict[FrameKind, list[Any]] = field(default_factory=dict)
    errors: dict[FrameKind, str | None] = field(default_factory=dict)
    output: dict[str, Any] | None = None
    output_error: str | None = None


async def collect(projection: AsyncIterable[Any]) -> tuple[list[Any], str | None]:
    items: list[Any] = []
    try:
        async for item in projection:
            items.append(item)
    except RuntimeError as exc:
        return items, str(exc)
    return items, None


async def reference(events: list[Event]) -> Reference:
    stream = AsyncChatModelStream(message_id=MESSAGE_ID)
    for event in copy.deepcopy(events):
        stream.dispatch(event)
    result = Reference()
    for kind, projection in (
        (FrameKind.TEXT, stream.text),
        (FrameKind.REASONING, stream.reasoning),
        (FrameKind.TOOL_CALL_CHUNK, stream.tool_calls),
    ):
        result.deltas[kind], result.errors[kind] = await collect(projection)
    try:
        result.output = message_to_dict(await stream.output)
    except RuntimeError as exc:
        result.output_error = str(exc)
    return result


def sync_items(projection: Iterable[Any]) -> list[Any]:
    """Every delta a sync projection holds so far (it raises after them once failed)."""
    items: list[Any] = []
    try:
        for item in projection:
            items.append(item)
    except RuntimeError:
        pass
    return items


def deltas_by_event(events: list[Event]) -> list[list[tuple[FrameKind, Any]]]:
    """For each event, the deltas it made appear in langchain-core's sync stream (public API)."""
    stream = ChatModelStream(message_id=MESSAGE_ID)
    seen = dict.fromkeys(DELTA_KINDS, 0)
    made: list[list[tuple[FrameKind, Any]]] = []
    for event in copy.deepcopy(events):
        stream.dispatch(event)
        new: list[tuple[FrameKind, Any]] = []
        for kind, projection in (
            (FrameKind.TEXT, stream.text),
            (FrameKind.REASONING, stream.reasoning),
            (FrameKind.TOOL_CALL_CHUNK, stream.tool_calls),
        ):
            items = sync_items(projection)
            new += [(kind, item) for item in items[seen[kind] :]]
            seen[kind] = len(items)
        made.append(new)
    return made


def through_the_wire(events: list[Event]) -> list[Event]:
    """The events as a worker gets them: encoded, decoded and order-checked under ids 0-1, 0-2, ..."""
    order = EventOrder(max_events=100_000)
    decoded = []
    for n, event in enumerate(events, start=1):
        wire = decode_event(encode_event(event, time_ms=1), EventLimits())
        order.check(f"0-{n}".encode(), wire)
        decoded.append(wire)
    return decoded


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(protocol_messages())
async def test_frames_equal_what_langchain_core_yields(events: list[Event]) -> None:
    wire_events = through_the_wire(events)
    assert wire_events == events

    assembler = MessageAssembler(MESSAGE_ID)
    per_event = [assembler.feed(event) for event in wire_events]
    frames = [frame for made in per_event for frame in made]
    expected = await reference(events)

    # Deltas, kind by kind, as the public projections yield them.
    for kind in DELTA_KINDS:
        assert deltas(frames, kind) == expected.deltas[kind], kind

    # Seqs, start and end.
    assert [frame.seq for frame in frames] == list(range(1, len(frames) + 1))
    assert frames[0].kind is FrameKind.START
    assert [frame.kind in TERMINAL_KINDS for frame in frames] == [False] * (len(frames) - 1) + [True]
    outcome = assembler.outcome
    assert outcome is not None
    if events[-1]["event"] == "error":
        message = events[-1]["message"]
        assert expected.output is None
        assert expected.output_error == message
        assert set(expected.errors.values()) == {message}
        assert frames[-1] == Frame(
            len(frames), FrameKind.ERROR, {"message": message, "code": events[-1].get("code", "model_error")}
        )
        assert outcome == Outcome.failed(message, events[-1].get("code", "model_error"))
    else:
        assert expected.output is not None
        assert set(expected.errors.values()) == {None}
        assert frames[-1] == Frame(len(frames), FrameKind.OUTPUT, expected.output)
        assert outcome == Outcome.completed(expected.output)

    # Order: each event's frames are exactly the deltas that event made, after those of earlier events.
    made = deltas_by_event(events)
    for n, (event_frames, event_deltas) in enumerate(zip(per_event, made, strict=True)):
        got = [(frame.kind, frame.data) for frame in event_frames if frame.kind in DELTA_KINDS]
        assert got == event_deltas, f"event {n}: {events[n]}"
    assert per_event[0][0].kind is FrameKind.START
    starts = [
        n for n, event_frames in enumerate(per_event) for f in event_frames if f.kind is FrameKind.START
    ]
    assert starts == [0]
    assert [f.kind for f in per_event[-1]][-1:] == [frames[-1].kind]

    # Determinism: the same events make byte-identical frames.
    again = MessageAssembler(MESSAGE_ID).feed_all(wire_events)
    assert [(f.seq, f.body_json()) for f in again] == [(f.seq, f.body_json()) for f in frames]


# -- (c) determinism ------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_same_events_make_identical_frames(case: dict[str, Any]) -> None:
    first = MessageAssembler(case["message_id"]).feed_all(case["events"])
    second = MessageAssembler(case["message_id"]).feed_all(case["events"])
    assert [(f.seq, f.body_json(), f.live_json()) for f in first] == [
        (f.seq, f.body_json(), f.live_json()) for f in second
    ]


def test_a_rebuilt_message_makes_the_same_frames_from_a_fresh_copy() -> None:
    case = case_by_name("parallel_tool_calls")
    first = MessageAssembler(case["message_id"]).feed_all(case["events"])
    decoded = [decode_event(encode_event(event), EventLimits()) for event in case["events"]]
    second = MessageAssembler(case["message_id"]).feed_all(decoded)
    assert [f.body_json() for f in first] == [f.body_json() for f in second]


# -- (d) JSON round trips -------------------------------------------------------------------

SAMPLE_FRAMES = [
    Frame(1, FrameKind.START, {"message_id": "m", "namespace": ["a"], "node": None, "metadata": None}),
    Frame(2, FrameKind.TEXT, 'h\u00e9llo \U0001f642 "quoted"\n'),
    Frame(3, FrameKind.REASONING, "\u6f22\u5b57"),
    Frame(
        4,
        FrameKind.TOOL_CALL_CHUNK,
        {"type": "tool_call_chunk", "id": "c", "name": "f", "args": '{"a', "index": 0},
    ),
    Frame(5, FrameKind.OUTPUT, {"type": "ai", "data": {"content": [], "id": "m"}}),
    Frame(6, FrameKind.ERROR, {"message": "boom", "code": "model_error"}),
]


@pytest.mark.parametrize("frame", SAMPLE_FRAMES, ids=[f.kind.value for f in SAMPLE_FRAMES])
def test_frame_body_round_trip(frame: Frame) -> None:
    body = frame.body_json()
    assert orjson.loads(body) == {"kind": frame.kind.value, "data": frame.data}
    rebuilt = Frame.from_body(frame.seq, body)
    assert rebuilt == frame
    assert rebuilt.kind is frame.kind


@pytest.mark.parametrize("frame", SAMPLE_FRAMES, ids=[f.kind.value for f in SAMPLE_FRAMES])
def test_frame_live_round_trip(frame: Frame) -> None:
    live = frame.live_json()
    assert orjson.loads(live) == {"seq": frame.seq, "kind": frame.kind.value, "data": frame.data}
    assert Frame.from_live(live) == frame


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_conformance_frames_round_trip(case: dict[str, Any]) -> None:
    for frame in MessageAssembler(case["message_id"]).feed_all(case["events"]):
        assert Frame.from_body(frame.seq, frame.body_json()) == frame
        assert Frame.from_live(frame.live_json()) == frame


def test_completed_outcome_round_trip() -> None:
    output = case_by_name("single_tool_call")["expected"]["output"]
    outcome = Outcome.completed(output)
    raw = outcome.to_json()
    assert orjson.loads(raw) == {"status": "completed", "message": output}
    assert Outcome.from_json(raw) == outcome
    assert Outcome.from_json(raw.decode()) == outcome


def test_failed_outcome_round_trip() -> None:
    outcome = Outcome.failed("provider overloaded \u2713", "overloaded")
    raw = outcome.to_json()
    assert orjson.loads(raw) == {
        "status": "failed",
        "error": {"message": "provider overloaded \u2713", "code": "overloaded"},
    }
    assert Outcome.from_json(raw) == outcome
    assert Outcome.from_json(raw.decode()) == outcome


# -- (e) failing a message ------------------------------------------------------------------


def test_fail_after_an_outcome_raises() -> None:
    case = case_by_name("plain_text")
    assembler = MessageAssembler(case["message_id"])
    assembler.feed_all(case["events"])
    with pytest.raises(RuntimeError, match="already ended"):
        assembler.fail("late", "timeout")
    assert assembler.outcome is not None
    assert assembler.outcome.status == "completed"


def test_fail_twice_raises() -> None:
    assembler = MessageAssembler("msg_01X")
    assembler.feed({"event": "message-start", "id": "msg_01X"})
    frame = assembler.fail("idle", "idle_timeout")
    assert frame == Frame(2, FrameKind.ERROR, {"message": "idle", "code": "idle_timeout"})
    with pytest.raises(RuntimeError, match="already ended"):
        assembler.fail("again", "idle_timeout")
    with pytest.raises(RuntimeError, match="already ended"):
        assembler.feed({"event": "message-finish"})


async def test_fail_ends_the_stream_for_its_consumers() -> None:
    assembler = MessageAssembler("msg_01X")
    assembler.feed({"event": "message-start", "id": "msg_01X"})
    assembler.feed({"event": "content-block-start", "index": 0, "content": {"type": "text", "text": ""}})
    assembler.feed(
        {"event": "content-block-delta", "index": 0, "delta": {"type": "text-delta", "text": "hi"}}
    )
    assembler.fail("poisoned", "invalid_json")
    assert assembler.outcome == Outcome.failed("poisoned", "invalid_json")
    assert assembler.stream.done
    assert await collect(assembler.stream.text) == ([], "poisoned")  # "hi" was taken as a frame
    with pytest.raises(RuntimeError, match="poisoned"):
        await assembler.stream.output


def test_fail_before_any_event_makes_frame_one() -> None:
    assembler = MessageAssembler("msg_01X")
    assert assembler.fail("too many deliveries", "max_deliveries") == Frame(
        1, FrameKind.ERROR, {"message": "too many deliveries", "code": "max_deliveries"}
    )
    assert assembler.outcome == Outcome.failed("too many deliveries", "max_deliveries")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ({"event": "error", "message": "boom", "code": "overloaded"}, "overloaded"),
        ({"event": "error", "message": "boom"}, "model_error"),
    ],
    ids=["with-code", "without-code"],
)
def test_error_event(error: Event, code: str) -> None:
    assembler = MessageAssembler("msg_01X")
    frames = assembler.feed_all([{"event": "message-start", "id": "msg_01X"}, error])
    assert [frame.kind for frame in frames] == [FrameKind.START, FrameKind.ERROR]
    assert frames[-1].data == {"message": "boom", "code": code}
    assert assembler.outcome == Outcome.failed("boom", code)


def test_error_event_before_any_start() -> None:
    assembler = MessageAssembler("msg_01X")
    frames = assembler.feed({"event": "error", "message": "no start"})
    assert frames == [Frame(1, FrameKind.ERROR, {"message": "no start", "code": "model_error"})]


def test_an_open_message_keeps_no_event_or_delta_it_has_framed() -> None:
    case = next(c for c in CASES if c["name"] == "plain_text")
    assembler = MessageAssembler(case["message_id"])
    frames = assembler.feed_all(case["events"][:-1])  # all but message-finish: still open
    assert len(frames) > 3
    stream = assembler.stream
    assert stream._events == []
    assert stream._events_proj._deltas == []
    assert stream._text_proj._deltas == []
