"""The worker on the embedded Redis of `lcstream demo` (fakeredis's TCP server).

That server closes the connection after any error reply, so the worker must
never rely on an error reply in its normal path (a `NOSCRIPT` before a script
is loaded, say): lease renewals while messages stream are what this exercises.
"""

from __future__ import annotations

import asyncio

from lcstream.streams.connection import connect_single
from lcstream.streams.reader import read_outcome
from lcstream.worker.demo.embedded import embedded_redis
from lcstream.worker.engine.runner import Worker
from tests.conftest import conformance_cases
from tests.faults.support import stream_message
from tests.helpers import all_outcomes, settings_for, wait_for

CASE = next(c for c in conformance_cases() if c["name"] == "plain_text")


async def test_leases_renew_on_the_embedded_redis_while_messages_stream() -> None:
    with embedded_redis() as url:
        redis = connect_single(url, socket_timeout_s=5)
        # Takeover 400 ms: upkeep (and its lease renewal) every 100 ms while the message streams.
        worker = Worker(redis, settings_for(redis_url=url, takeover_after_ms=400))
        serving = asyncio.create_task(worker.run())
        try:
            await stream_message(redis, CASE["message_id"], CASE["events"], pace_s=0.05)
            await wait_for(lambda: all_outcomes(redis, [CASE["message_id"]]), what="the outcome")
            outcome = await read_outcome(redis, CASE["message_id"])
            assert outcome is not None
            assert (outcome.status, outcome.message) == ("completed", CASE["expected"]["output"])
            assert worker.health.ready() == (True, "ready")  # no partition restarted on a dropped link
        finally:
            worker.stop()
            await serving
            await redis.aclose()
