"""The conformance fixtures are what the installed langchain-core makes of their events."""

from __future__ import annotations

from tests.fixtures import conformance


async def test_the_fixtures_on_disk_are_what_langchain_core_makes_today() -> None:
    assert conformance.check(await conformance.generate(), conformance.OUT_DIR) == []
