"""lcstream: LangChain chat-model streams through Redis, followed from anywhere.

The public API, in one place: produce a message's events (or every chat-model call
of a run), read it back from any process (a real `AsyncChatModelStream`, frames,
a snapshot, the result; a run's messages or frames), connect, name keys, run
generations as background jobs, and the errors. Everything else
(`lcstream.worker`, the internals of `lcstream.streams`) may change without notice.
"""

from lcstream.config import Settings, load_settings
from lcstream.streams.attach import AttachedStream, attach
from lcstream.streams.attach_run import attach_run
from lcstream.streams.connection import connect
from lcstream.streams.errors import (
    EventDecodeError,
    InvalidMessageIdError,
    LcstreamError,
    MessageFailedError,
    MessageIdInUseError,
    MessageNotFoundError,
    PartitionCountError,
    RedisUnavailableError,
    RunFailedError,
    TokenError,
)
from lcstream.streams.frames import Frame, FrameKind, Outcome
from lcstream.streams.jobcodec import JobFailedError
from lcstream.streams.jobqueue import cancel_generation, enqueue_generation
from lcstream.streams.keys import Keyspace, MessageKeys
from lcstream.streams.producer import (
    MessageEndedError,
    MessageExpiredError,
    ProducerClosedError,
    StreamProducer,
)
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_events, read_frames, read_outcome
from lcstream.streams.result import result
from lcstream.streams.run_handler import RedisStreamHandler
from lcstream.streams.snapshot import Snapshot, read_snapshot
from lcstream.streams.subscribe import subscribe
from lcstream.streams.subscribe_run import RunFrame, subscribe_run
from lcstream.streams.tee import tee_stream
from lcstream.streams.tee_run import tee_run
from lcstream.streams.tokens import mint_read_token

__all__ = [
    "AttachedStream",
    "EventDecodeError",
    "Frame",
    "FrameKind",
    "InvalidMessageIdError",
    "JobFailedError",
    "Keyspace",
    "LcstreamError",
    "MessageEndedError",
    "MessageExpiredError",
    "MessageFailedError",
    "MessageIdInUseError",
    "MessageKeys",
    "MessageNotFoundError",
    "Outcome",
    "PartitionCountError",
    "ProducerClosedError",
    "RedisStreamHandler",
    "RedisUnavailableError",
    "RunFailedError",
    "RunFrame",
    "Settings",
    "Snapshot",
    "StreamProducer",
    "TokenError",
    "attach",
    "attach_run",
    "cancel_generation",
    "connect",
    "enqueue_generation",
    "load_settings",
    "mint_read_token",
    "publish_events",
    "read_events",
    "read_frames",
    "read_outcome",
    "read_snapshot",
    "result",
    "subscribe",
    "subscribe_run",
    "tee_run",
    "tee_stream",
]
