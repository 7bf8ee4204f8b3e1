"""What the gateway's endpoints share while the app runs: settings, Redis, readers, access, limits;
and the one check of who may read what."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from starlette.requests import Request
from starlette.responses import Response

from lcstream.config import Settings
from lcstream.streams.cluster import LiveChannels, RedisClient
from lcstream.streams.keys import Keyspace
from lcstream.streams.run_index import lists_message
from lcstream.worker.gateway.auth import Access, Authority
from lcstream.worker.gateway.errors import shown_id
from lcstream.worker.gateway.hub import HubRegistry
from lcstream.worker.gateway.limits import ClientStreams
from lcstream.worker.gateway.metrics import GatewayMetrics
from lcstream.worker.gateway.notices import NoticeBoard
from lcstream.worker.gateway.run_hub import RunHubRegistry
from lcstream.worker.gateway.sampler import OperationsSampler


@dataclass(frozen=True, slots=True)
class Gateway:
    """The running gateway; the lifespan builds it and closes what it opened."""

    settings: Settings
    redis: RedisClient
    keyspace: Keyspace
    hubs: HubRegistry
    runs: RunHubRegistry
    live: LiveChannels
    notices: NoticeBoard
    metrics: GatewayMetrics
    authority: Authority
    client_streams: ClientStreams
    operations: OperationsSampler

    async def authorize(
        self, request: Request, *, message_id: str | None = None, run_id: str | None = None
    ) -> Access | Response:
        """The request's access if it may read message M, or run R (neither: operator-only data such as
        lists), else the 401 or 403 that refuses it. A run's token reads the messages its index lists."""
        access = self.authority.access(request)
        if isinstance(access, Response) or access.operator:
            return access
        if run_id is not None:
            allowed, what = access.run_id == run_id, f"run {shown_id(run_id)}"
        elif message_id is not None:
            allowed, what = access.message_id == message_id, f"message {shown_id(message_id)}"
            if not allowed and access.run_id is not None:
                allowed = await lists_message(self.redis, self.keyspace, access.run_id, message_id)
        else:
            allowed, what = False, "this (operators only)"
        return access if allowed else self.authority.refuse(what)


def gateway_of(request: Request) -> Gateway:
    """The gateway serving `request` (from the lifespan state)."""
    return cast(Gateway, request.state.gateway)
