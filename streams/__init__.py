"""lcstream library: wire format, producer, pure assembly core, readers."""

from streams.errors import (
    EventDecodeError,
    InvalidMessageIdError,
    LcstreamError,
    MessageFailedError,
)
from streams.events import EventLimits, decode_event, encode_event
from streams.frames import Frame, FrameKind, MessageAssembler, Outcome
from streams.keys import Keyspace, MessageKeys, partition_of, validate_message_id
from streams.producer import StreamProducer, publish_events
from streams.reader import read_events, read_frames, read_outcome
from streams.tee import tee_stream

__all__ = [
    "EventDecodeError",
    "EventLimits",
    "Frame",
    "FrameKind",
    "InvalidMessageIdError",
    "Keyspace",
    "LcstreamError",
    "MessageAssembler",
    "MessageFailedError",
    "MessageKeys",
    "Outcome",
    "StreamProducer",
    "decode_event",
    "encode_event",
    "partition_of",
    "publish_events",
    "read_events",
    "read_frames",
    "read_outcome",
    "tee_stream",
    "validate_message_id",
]
