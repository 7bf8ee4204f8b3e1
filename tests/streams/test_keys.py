"""Tests of streams/keys.py: message-id validation, the partition function and key names of wire format v1."""

from __future__ import annotations

import re
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from lcstream.streams.errors import InvalidMessageIdError, LcstreamError, Severity
from lcstream.streams.keys import Keyspace, partition_of, validate_message_id

ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
valid_ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=256)


@pytest.mark.parametrize(
    "message_id",
    [
        "lc_run--01a2b3c4-d5e6-7f80-9a1b-2c3d4e5f6a7b",
        "lc_run--42",
        "chatcmpl-abc",
        "msg_01X",
        "a",
        "run.1:step-2_x",
        "x" * 256,
    ],
)
def test_valid_message_ids_are_returned_unchanged(message_id: str) -> None:
    assert validate_message_id(message_id) == message_id


@pytest.mark.parametrize(
    "message_id",
    [
        "x" * 257,
        "",
        "lc_run--{0}",
        "a}b",
        "lcstream:*",
        "what?",
        "ab[c]",
        "has space",
        "line\nbreak",
        "trailing\n",
        "\ttab",
        "h\u00e9llo",
        "\u0663",  # an Arabic-Indic digit: a digit, but not ASCII
        "emoji\U0001f642",
        "nul\x00",
        "slash/ok?",
    ],
)
def test_invalid_message_ids_are_rejected_with_a_clear_error(message_id: str) -> None:
    with pytest.raises(InvalidMessageIdError) as caught:
        validate_message_id(message_id)
    text = str(caught.value)
    assert "invalid message id" in text
    assert "1-256 characters" in text
    assert "[A-Za-z0-9._:-]" in text
    assert repr(message_id)[:20] in text


@pytest.mark.parametrize("value", [42, None, b"lc_run--42", ["lc_run--42"]])
def test_non_string_message_ids_are_rejected(value: object) -> None:
    with pytest.raises(InvalidMessageIdError, match="invalid message id"):
        validate_message_id(value)  # type: ignore[arg-type]


def test_invalid_message_id_error_is_a_poison_value_error() -> None:
    with pytest.raises(ValueError, match="invalid message id") as caught:
        validate_message_id("a b")
    assert isinstance(caught.value, LcstreamError)
    assert caught.value.severity is Severity.POISON


def test_a_long_invalid_id_is_shortened_in_the_error() -> None:
    with pytest.raises(InvalidMessageIdError) as caught:
        validate_message_id("y" * 10_000)
    assert len(str(caught.value)) < 200


@settings(max_examples=200, deadline=None)
@given(valid_ids)
def test_every_id_from_the_alphabet_is_valid(message_id: str) -> None:
    assert validate_message_id(message_id) == message_id


@settings(max_examples=200, deadline=None)
@given(message_id=valid_ids, partitions=st.integers(min_value=1, max_value=16384))
def test_partition_is_zlib_crc32_modulo_n(message_id: str, partitions: int) -> None:
    k = partition_of(message_id, partitions)
    assert k == zlib.crc32(message_id.encode()) % partitions
    assert 0 <= k < partitions


# CRC-32 values computed independently (bit-by-bit, polynomial 0xEDB88320) when
# this test was written; they pin the cross-language contract of docs/protocol.md.
@pytest.mark.parametrize(
    ("message_id", "crc", "partitions", "expected"),
    [
        ("123456789", 0xCBF43926, 16, 6),  # the standard CRC-32 check value
        ("lc_run--42", 0xD69344F8, 4, 0),
        ("lc_run--01a2", 0xD5180838, 4, 0),
        ("chatcmpl-abc", 0x26BC00BE, 4, 2),
        ("msg_01X", 0xC5410279, 4, 1),
        ("a", 0xE8B7BE43, 4, 3),
        ("msg_01X", 0xC5410279, 16, 9),
        ("lc_run--42", 0xD69344F8, 1, 0),
    ],
)
def test_partition_of_known_crc32_values(message_id: str, crc: int, partitions: int, expected: int) -> None:
    assert zlib.crc32(message_id.encode()) == crc
    assert partition_of(message_id, partitions) == expected


def test_key_formats_match_the_design_example() -> None:
    keyspace = Keyspace()
    keys = keyspace.message("lc_run--42")
    assert keys.message_id == "lc_run--42"
    assert keys.partition == 0
    assert keys.events == "lcstream:{0}:lc_run--42:events"
    assert keys.out == "lcstream:{0}:lc_run--42:out"
    assert keys.live == "lcstream:{0}:lc_run--42:live"
    assert keys.result == "lcstream:{0}:lc_run--42:result"
    assert keys.dispatch == "lcstream:{0}:dispatch"
    assert keyspace.dispatch(0) == "lcstream:{0}:dispatch"
    assert keyspace.all_dispatch() == ["lcstream:{0}:dispatch"]
    assert keyspace.notices == "lcstream:messages"
    assert keyspace.dead == "lcstream:dead"


def test_custom_prefix_is_used_everywhere() -> None:
    keyspace = Keyspace(prefix="acme.prod")
    keys = keyspace.message("msg_01X")
    for key in (
        keys.events,
        keys.out,
        keys.live,
        keys.result,
        keys.dispatch,
        keyspace.notices,
        keyspace.dead,
    ):
        assert key.startswith("acme.prod:")
    assert keyspace.notices == "acme.prod:messages"
    assert keyspace.dead == "acme.prod:dead"


@pytest.mark.parametrize(
    ("message_id", "partition"),
    [("lc_run--42", 0), ("msg_01X", 1), ("chatcmpl-abc", 2), ("a", 3)],
)
def test_with_four_partitions_all_keys_of_a_message_share_its_tag(message_id: str, partition: int) -> None:
    keyspace = Keyspace(partitions=4)
    keys = keyspace.message(message_id)
    assert keys.partition == partition
    five = [keys.events, keys.out, keys.live, keys.result, keys.dispatch]
    assert keys.dispatch == f"lcstream:{{{partition}}}:dispatch"
    assert keys.events == f"lcstream:{{{partition}}}:{message_id}:events"
    for key in five:
        assert re.findall(r"\{([^}]*)\}", key) == [str(partition)]
    # The hash tag puts them in one Redis Cluster slot.
    assert len({key_slot(key.encode()) for key in five}) == 1


def test_all_dispatch_lists_every_partition_in_order() -> None:
    assert Keyspace(partitions=3).all_dispatch() == [
        "lcstream:{0}:dispatch",
        "lcstream:{1}:dispatch",
        "lcstream:{2}:dispatch",
    ]


@pytest.mark.parametrize("message_id", ["lc_run--{0}", "a*", "", "x" * 257])
def test_keyspace_validates_before_building_keys(message_id: str) -> None:
    with pytest.raises(InvalidMessageIdError):
        Keyspace().message(message_id)


@settings(max_examples=100, deadline=None)
@given(message_id=valid_ids, partitions=st.integers(min_value=1, max_value=64))
def test_message_keys_use_partition_of(message_id: str, partitions: int) -> None:
    keys = Keyspace(partitions=partitions).message(message_id)
    k = partition_of(message_id, partitions)
    assert keys.partition == k
    assert keys.events == f"lcstream:{{{k}}}:{message_id}:events"
    assert keys.dispatch == f"lcstream:{{{k}}}:dispatch"
