"""What the gateway's endpoints share while the app runs: settings, Redis, readers, access, limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from starlette.requests import Request

from lcstream.config import Settings
from lcstream.streams.cluster import RedisClient
from lcstream.streams.keys import Keyspace
from lcstream.worker.gateway.auth import Authority
from lcstream.worker.gateway.hub import HubRegistry
from lcstream.worker.gateway.limits import ClientStreams
from lcstream.worker.gateway.metrics import GatewayMetrics
from lcstream.worker.gateway.notices import NoticeBoard


@dataclass(frozen=True, slots=True)
class Gateway:
    """The running gateway; the lifespan builds it and closes what it opened."""

    settings: Settings
    redis: RedisClient
    keyspace: Keyspace
    hubs: HubRegistry
    notices: NoticeBoard
    metrics: GatewayMetrics
    authority: Authority
    client_streams: ClientStreams


def gateway_of(request: Request) -> Gateway:
    """The gateway serving `request` (from the lifespan state)."""
    return cast(Gateway, request.state.gateway)
