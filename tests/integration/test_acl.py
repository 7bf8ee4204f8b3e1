"""Least privilege: producer, worker and reader run under the ACL users of docs/security.md.

The users are created from the lines the page documents (parsed out of its
`redis` code block), on a redis-server each test starts for itself. A user
made for another prefix by the page's own recipe can read nothing of lcstream.
"""

from __future__ import annotations

import inspect
import json
import re
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import NoPermissionError

from lcstream.streams.connection import connect_single
from lcstream.streams.frames import Frame
from lcstream.streams.groups import group_backlog, trim_dispatch
from lcstream.streams.keys import Keyspace
from lcstream.streams.producer import StreamProducer
from lcstream.streams.publish import publish_events
from lcstream.streams.reader import read_frames, read_outcome
from lcstream.worker.deadletters import list_dead_letters
from lcstream.worker.engine.commit_script import COMMIT_LUA
from tests.conftest import RedisServer, conformance_cases, start_redis_server, stop_redis_server
from tests.helpers import assert_frames_match, collect_pubsub, wait_for
from tests.integration.processes import Workers, lcstream_env, run_lcstream

SECURITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
ROLES = ("producer", "worker", "reader")
CASES = {c["name"]: c for c in conformance_cases()}
KEYSPACE = Keyspace("lcstream", partitions=2)

# redis-py sends CLIENT SETINFO on connect and ignores a refusal. Redis 7.0 does not know the
# subcommand (nor accepts it in an ACL rule); from 7.2 on it is refused and logged.
IGNORED_DENIALS = {"client|setinfo"}


def documented_users(prefix: str = "lcstream") -> dict[str, list[str]]:
    """User name -> rules, of the page's `ACL SETUSER` lines, adapted to `prefix` as the page says."""
    blocks = re.findall(r"^```redis\n(.*?)^```$", SECURITY_DOC.read_text(), re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, "docs/security.md must hold exactly one ```redis block: the ACL lines"
    users: dict[str, list[str]] = {}
    for line in blocks[0].strip().splitlines():
        acl, setuser, user, *rules = line.split()
        assert (acl, setuser) == ("ACL", "SETUSER"), line
        users[user.replace("lcstream", prefix)] = [rule.replace("lcstream", prefix) for rule in rules]
    assert set(users) == {f"{prefix}-{role}" for role in ROLES}
    return users


@dataclass(frozen=True)
class AclServer:
    """A redis-server of this test, with the documented users for `lcstream` and for `other`."""

    server: RedisServer
    passwords: dict[str, str]
    clients: list[Redis] = field(default_factory=list)

    def url(self, user: str) -> str:
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{self.server.port}/0"

    def client(self, user: str | None = None) -> Redis:
        """A client as `user`, or as the administrator (the default user) when None; closed at the end."""
        client = connect_single(self.server.url if user is None else self.url(user))
        self.clients.append(client)
        return client


def create_users(server: RedisServer, prefix: str) -> dict[str, str]:
    """Run the page's lines, adapted to `prefix`, with fresh passwords; return them by user."""
    passwords: dict[str, str] = {}
    with redis.Redis.from_url(server.url) as admin:
        for user, rules in documented_users(prefix).items():
            role = user.removeprefix(f"{prefix}-")
            placeholder = f"><{role}-password>"
            assert rules.count(placeholder) == 1, f"{user}: one {placeholder} rule expected"
            passwords[user] = secrets.token_hex(16)
            rules = [f">{passwords[user]}" if r == placeholder else r for r in rules]
            if user == "other-reader":
                rules += ["+psubscribe", "+punsubscribe"]  # the page's addition for dashboards
            assert admin.execute_command("ACL", "SETUSER", user, *rules) in (b"OK", "OK", True)
    return passwords


@pytest.fixture
async def acl_server(tmp_path: Path) -> AsyncIterator[AclServer]:
    server = start_redis_server(tmp_path)
    acl: AclServer | None = None
    try:
        passwords = create_users(server, "lcstream") | create_users(server, "other")
        acl = AclServer(server, passwords)
        yield acl
    finally:
        for client in acl.clients if acl else ():
            await client.aclose()
        stop_redis_server(server)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    with Workers(tmp_path) as started:
        yield started


@pytest.fixture
def admin(acl_server: AclServer) -> Redis:
    return acl_server.client()


async def denials(admin: Redis) -> list[dict[str, Any]]:
    """The server's ACL LOG: every refused command, key or channel, with its user and reason."""
    entries: list[dict[str, Any]] = await admin.acl_log(count=1000)  # default: newest 10
    return [e for e in entries if e["object"] not in IGNORED_DENIALS]


async def await_subscribed(pubsub: PubSub, channels: int, timeout_s: float = 10.0) -> None:
    """Wait for the server's confirmation of `channels` subscriptions (a refusal raises NOPERM)."""
    confirmed = 0

    async def confirmed_all() -> bool:
        nonlocal confirmed
        message = await pubsub.get_message(timeout=0.1)
        if message is not None and message["type"] in ("subscribe", "psubscribe"):
            confirmed += 1
        return confirmed == channels

    await wait_for(confirmed_all, timeout_s=timeout_s, what="subscription confirmations")


def test_documented_lines_grant_explicit_commands_on_the_prefix_only() -> None:
    users = documented_users()
    for user, rules in users.items():
        assert rules[:3] == ["reset", "resetchannels", "on"], f"{user}: start from nothing, then enable"
        for rule in rules:
            assert not rule.startswith(("+@", "-@")), f"{user}: categories instead of commands: {rule}"
            assert rule not in {"allkeys", "allchannels", "allcommands", "nopass", "~*", "&*", "%R~*"}, user
            if rule[0] in "~%&":
                assert re.search(r"[~&]lcstream:", rule), f"{user}: pattern outside the prefix: {rule}"
    assert [r for r in users["lcstream-reader"] if "~" in r] == ["%R~lcstream:*"]  # read-only keys
    assert not [r for r in users["lcstream-producer"] if r.startswith("&")]  # no channel at all
    assert not {"+eval", "+multi", "+exec"} & set(users["lcstream-worker"])  # EVALSHA, no transactions


def test_lines_hold_on_a_server_that_grants_all_channels_by_default(tmp_path: Path) -> None:
    server = start_redis_server(tmp_path, "--acl-pubsub-default", "allchannels")
    try:
        create_users(server, "lcstream")
        with redis.Redis.from_url(server.url, decode_responses=True) as admin:
            channels = {role: admin.acl_getuser(f"lcstream-{role}")["channels"] for role in ROLES}
    finally:
        stop_redis_server(server)
    assert channels == {"producer": [], "worker": ["&lcstream:*"], "reader": ["&lcstream:*"]}


async def test_producer_worker_and_reader_work_under_their_users(
    acl_server: AclServer, admin: Redis, workers: Workers
) -> None:
    producer, reader = acl_server.client("lcstream-producer"), acl_server.client("lcstream-reader")
    worker_url = acl_server.url("lcstream-worker")
    worker_env = lcstream_env(worker_url, LCSTREAM_PARTITIONS="2", LCSTREAM_GRACE_PERIOD_S="0")
    reader_env = lcstream_env(acl_server.url("lcstream-reader"), LCSTREAM_PARTITIONS="2")
    cases = [CASES[name] for name in ("plain_text", "single_tool_call", "error_mid_stream")]
    handover = CASES["reasoning_then_text"]  # open when worker 1 stops: released, taken over by worker 2
    poison = "acl-poison-1"
    everything = [c["message_id"] for c in cases] + [poison]

    # The reader listens to the notices and to the cases' live frames (SUBSCRIBE as the reader).
    pubsub = reader.pubsub()
    live = {KEYSPACE.message(c["message_id"]).live.encode(): c["message_id"] for c in cases}
    await pubsub.subscribe(KEYSPACE.notices, *live)
    await await_subscribed(pubsub, 1 + len(live))

    # The producer publishes the cases, a poison message and an announcement naming no valid id,
    # and starts the handover message without finishing it.
    for case in cases:
        assert await publish_events(producer, case["events"], keyspace=KEYSPACE) == case["message_id"]
    start = {**CASES["plain_text"]["events"][0], "id": poison}
    await publish_events(producer, [start], keyspace=KEYSPACE)
    assert await producer.xadd(KEYSPACE.message(poison).events, {"e": b"{not json"}, id="0-2")
    await producer.xadd(KEYSPACE.dispatch(0), {"m": "bad{id}"})
    head = 3
    handover_producer = StreamProducer(producer, handover["message_id"], keyspace=KEYSPACE)
    for event in handover["events"][:head]:
        await handover_producer.send(event)
    await handover_producer.flush()

    first = workers.start(worker_env)

    async def all_ended() -> bool:
        outcomes = [await read_outcome(reader, m, KEYSPACE) for m in everything]
        claimed = [
            line for line in first.log_lines()
            if line["event"] == "claimed" and line["message_id"] == handover["message_id"]
        ]  # fmt: skip
        return None not in outcomes and len(await list_dead_letters(reader, KEYSPACE)) == 2 and bool(claimed)

    await wait_for(all_ended, timeout_s=60, what="every outcome, both dead letters, the handover claimed")

    # The reader sees outcomes and frames equal to langchain-core's own stream.
    stored: dict[str, list[Frame]] = {}
    for case in cases:
        message_id, expected = case["message_id"], case["expected"]
        stored[message_id] = await assert_frames_match(reader, message_id, expected, KEYSPACE)
        outcome = await read_outcome(reader, message_id, KEYSPACE)
        assert outcome is not None
        if "output" in expected:
            assert (outcome.status, outcome.message) == ("completed", expected["output"])
        else:
            assert outcome.error is not None and outcome.error["message"] == expected["error"]
    failed = await read_outcome(reader, poison, KEYSPACE)
    assert failed is not None and failed.error is not None and failed.error["code"] == "invalid_json"
    letters = await list_dead_letters(reader, KEYSPACE)
    assert {(d.message_id, d.reason) for d in letters} == {
        (poison, "invalid_json"),
        ("bad{id}", "invalid_message_id"),
    }

    # The worker published frames and notices that the reader received.
    def heard_all(got: list[tuple[bytes, bytes]]) -> bool:
        ended = {
            json.loads(data)["message_id"]
            for channel, data in got
            if channel == KEYSPACE.notices.encode() and json.loads(data)["status"] != "started"
        }
        return ended == set(everything) and sum(c in live for c, _ in got) == sum(map(len, stored.values()))

    received = await collect_pubsub(pubsub, done=heard_all)
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    heard: dict[str, list[Frame]] = {m: [] for m in stored}
    for channel, payload in received:
        if channel in live:
            heard[live[channel]].append(Frame.from_live(payload))
    assert heard == stored

    # The reader may see the group's backlog (the gateway's /metrics does): nothing waits undelivered.
    for dispatch in KEYSPACE.all_dispatch():
        backlog = await group_backlog(reader, dispatch, "workers")
        assert backlog is not None
        assert backlog.lag == 0

    # The CLI as the reader: outcomes and dead letters.
    done = run_lcstream("result", "msg-plain-1", env=reader_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "status": "completed",
        "message": CASES["plain_text"]["expected"]["output"],
    }
    done = run_lcstream("result", poison, env=reader_env)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["error"]["code"] == "invalid_json"
    done = run_lcstream("dead", "list", "--json", env=reader_env)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert {(d["message_id"], d["reason"]) for d in listed} == {(d.message_id, d.reason) for d in letters}

    # The operator re-runs the poison message with the worker's user; it is dead-lettered again.
    done = run_lcstream("dead", "retry", poison, env=worker_env)
    assert done.returncode == 0, done.stderr
    dispatch_id = done.stdout.split()[-1]

    async def dead_again() -> bool:
        again = await list_dead_letters(reader, KEYSPACE, message_id=poison)
        return [d.dispatch_id for d in again] == [dispatch_id] and bool(
            await read_outcome(reader, poison, KEYSPACE)
        )

    await wait_for(dead_again, what="the retried poison message dead-lettered again")

    # Worker 1 renews its lease on the open handover message (its idle time drops back; the lease
    # script's XPENDING and XCLAIM run as the worker user), and hands it back on SIGTERM.
    claim = next(line for line in first.log_lines() if line.get("message_id") == handover["message_id"])
    idle_ms: list[int] = []

    async def lease_renewed() -> bool:
        dispatch, entry_id = KEYSPACE.message(handover["message_id"]).dispatch, claim["entry_id"]
        [pending] = await admin.xpending_range(dispatch, "workers", min=entry_id, max=entry_id, count=1)
        idle_ms.append(pending["time_since_delivered"])
        return len(idle_ms) > 1 and idle_ms[-1] < idle_ms[-2]

    await wait_for(lease_renewed, timeout_s=10, what="worker 1 renewing its lease")
    users = {entry["user"] for entry in await admin.client_list()}
    assert {"lcstream-producer", "lcstream-reader", "lcstream-worker"} <= users
    assert first.terminate() == 0
    released = [line for line in first.log_lines() if line["event"] == "released"]
    assert [line["messages"] for line in released] == [1]

    # Worker 2 takes it over; the producer finishes it; it completes as in-process. (Not --burst:
    # with several partitions a burst worker may exit before its first takeover; see the report.)
    second = workers.start(worker_env)

    async def taken_over() -> bool:
        return any(line["event"] == "taken-over" for line in second.log_lines())

    await wait_for(taken_over, what="worker 2 taking over the handover message")
    for event in handover["events"][head:]:
        await handover_producer.send(event)
    await handover_producer.aclose()

    async def handover_done() -> bool:
        return await read_outcome(reader, handover["message_id"], KEYSPACE) is not None

    await wait_for(handover_done, what="the handover message's outcome")
    assert second.terminate() == 0
    await assert_frames_match(reader, handover["message_id"], handover["expected"], KEYSPACE)
    outcome = await read_outcome(reader, handover["message_id"], KEYSPACE)
    assert outcome is not None and outcome.message == handover["expected"]["output"]

    # Trimming D(k) runs every 10 s in a worker: run it here, as the worker user.
    as_worker = acl_server.client("lcstream-worker")
    for dispatch in KEYSPACE.all_dispatch():
        await trim_dispatch(as_worker, dispatch)

    # Nothing was refused on the way, and the worker's password never reached a log.
    assert await denials(admin) == []
    for process in (first, second):
        log = process.log_path.read_text()
        assert acl_server.passwords["lcstream-worker"] not in log
        assert not [line for line in process.log_lines() if line["event"] == "redis-unavailable"]
    started = next(line for line in first.log_lines() if line["event"] == "started")
    assert started["redis"] == f"redis://lcstream-worker:***@127.0.0.1:{acl_server.server.port}/0"


async def lcstream_data(admin: Redis) -> dict[str, str]:
    """Keys and channels of one finished lcstream message, written by the administrator."""
    keys = KEYSPACE.message("msg-secret-1")
    await admin.xadd(keys.events, {"e": b'{"event":"message-start","id":"msg-secret-1"}'}, id="0-1")
    await admin.xadd(keys.out, {"f": b'{"kind":"text","data":"secret"}'}, id="0-1")
    await admin.set(keys.result, b'{"status":"failed","error":{"message":"secret","code":"x"}}')
    await admin.xadd(KEYSPACE.dead, {"m": "msg-secret-1", "reason": "x"})
    return {
        "events": keys.events, "out": keys.out, "result": keys.result, "live": keys.live,
        "dispatch": keys.dispatch, "dead": KEYSPACE.dead, "notices": KEYSPACE.notices,
    }  # fmt: skip


async def refused(attempt: Awaitable[object] | object) -> None:
    """The command (an awaitable from the async client) is refused with NOPERM."""
    assert inspect.isawaitable(attempt)
    with pytest.raises(NoPermissionError):
        await attempt


async def refused_subscription(client: Redis, name: str, *, pattern: bool = False) -> None:
    """SUBSCRIBE (or PSUBSCRIBE) is sent, and the server's reply is a refusal."""
    pubsub = client.pubsub()
    try:
        await (pubsub.psubscribe(name) if pattern else pubsub.subscribe(name))
        with pytest.raises(NoPermissionError):
            await await_subscribed(pubsub, 1, timeout_s=5)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_a_user_of_another_prefix_reads_nothing(acl_server: AclServer, admin: Redis) -> None:
    k = await lcstream_data(admin)
    other_reader, other_worker = acl_server.client("other-reader"), acl_server.client("other-worker")

    # Its own prefix works: the refusals below are about the lcstream keys and channels.
    assert await other_reader.get("other:{0}:msg-secret-1:result") is None
    assert await other_worker.set("other:{0}:msg-secret-1:result", b"{}")
    pubsub = other_reader.pubsub()
    await pubsub.subscribe("other:messages")
    await await_subscribed(pubsub, 1)
    await pubsub.aclose()  # type: ignore[no-untyped-call]

    await refused(other_reader.get(k["result"]))
    await refused(other_reader.xrange(k["out"]))
    await refused(other_reader.xrange(k["events"]))
    await refused(other_reader.xrevrange(k["dead"]))
    await refused(other_reader.xread({k["out"]: "0-0", k["events"]: "0-0"}))
    await refused_subscription(other_reader, k["live"])
    await refused_subscription(other_reader, k["notices"])
    await refused_subscription(other_reader, "lcstream:*", pattern=True)

    await refused(other_worker.get(k["result"]))
    await refused(other_worker.xrevrange(k["out"]))
    await refused(other_worker.xread({k["events"]: "0-0"}))
    await refused(other_worker.xreadgroup("workers", "spy", {k["dispatch"]: ">"}))
    sha = await other_worker.script_load(COMMIT_LUA)
    one_message: tuple[str, ...] = (
        "spy", "workers", k["notices"], "60", "PUBLISH", "1700000000000", "1", "100",
        "0-1", k["live"], "1", "1", "0", "", '{"kind":"text","data":"x"}',
    )  # fmt: skip
    keys = (k["dispatch"], k["dead"], k["out"], k["result"], k["events"])
    await refused(other_worker.evalsha(sha, len(keys), *keys, *one_message))
    await refused(other_worker.set(k["result"], b"forged"))
    await refused(other_worker.xadd(k["dead"], {"m": "forged"}))
    await refused(other_worker.delete(k["out"]))
    await refused(other_worker.publish(k["live"], b"forged"))

    # Every refusal was for an lcstream key or channel, not for a missing command; nothing changed.
    # (ACL LOG merges refusals of one user, reason and object into one entry with a count.)
    refusals = [e for e in await denials(admin) if e["username"].startswith("other-")]
    assert sum(e["count"] for e in refusals) == 17
    assert {e["reason"] for e in refusals} <= {"key", "channel"}
    assert all(e["object"].startswith("lcstream:") for e in refusals)
    assert (await admin.get(k["result"]) or b"").startswith(b'{"status":"failed"')
    assert await admin.xlen(k["dead"]) == 1 and await admin.xlen(k["out"]) == 1


async def test_each_role_is_refused_outside_its_job(acl_server: AclServer, admin: Redis) -> None:
    k = await lcstream_data(admin)
    producer = acl_server.client("lcstream-producer")
    worker = acl_server.client("lcstream-worker")
    reader = acl_server.client("lcstream-reader")

    attempts: list[tuple[str, Callable[[], Awaitable[object] | object]]] = [
        # The worker administers nothing and sees only its prefix.
        ("command", lambda: worker.flushdb()),
        ("command", lambda: worker.flushall()),
        ("command", lambda: worker.config_get("*")),
        ("command", lambda: worker.config_set("appendonly", "no")),
        ("command", lambda: worker.keys("*")),
        ("command", lambda: worker.scan()),
        ("command", lambda: worker.acl_list()),
        ("command", lambda: worker.eval("return 1", 0)),
        ("key", lambda: worker.get("other:{0}:x:result")),
        # The producer can neither read outcomes nor forge frames, dead letters or live frames.
        ("key", lambda: producer.get(k["result"])),
        ("key", lambda: producer.xrange(k["out"])),
        ("key", lambda: producer.xadd(k["out"], {"f": b"forged"}, id="0-2")),
        ("key", lambda: producer.xadd(k["dead"], {"m": "forged"})),
        ("key", lambda: producer.eval("return 1", 1, k["result"])),
        ("command", lambda: producer.publish(k["live"], b"forged")),
        # The reader writes nothing.
        ("command", lambda: reader.set(k["result"], b"forged")),
        ("command", lambda: reader.xadd(k["events"], {"e": b"{}"})),
        ("command", lambda: reader.delete(k["out"])),
        ("command", lambda: reader.xack(k["dispatch"], "workers", "0-1")),
        ("command", lambda: reader.publish(k["live"], b"forged")),
        ("command", lambda: reader.flushdb()),
    ]
    for _, attempt in attempts:
        await refused(attempt())
    # Each was refused for the expected reason: a missing command, or a key outside the role.
    logged = Counter[str]()
    for entry in await denials(admin):
        logged[entry["reason"]] += entry["count"]
    assert logged == Counter(reason for reason, _ in attempts)

    # A role's own work still goes through on the same connections.
    assert await reader.get(k["result"]) is not None
    assert [f.seq for f in await read_frames(reader, "msg-secret-1", KEYSPACE)] == [1]
    assert await producer.xadd(k["events"], {"e": b"{}"}, id="0-2", nomkstream=True)
