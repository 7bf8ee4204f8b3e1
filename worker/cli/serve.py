"""`lcstream serve`: the SSE gateway and live dashboard over HTTP (uvicorn)."""

from __future__ import annotations

import socket
from typing import Annotated

import structlog
import typer

from lcstream.config import load_settings
from lcstream.worker.cli.common import ConfigOption, ExitCode, RedisUrlOption, fail, reports_errors
from lcstream.worker.observability.logs import configure_logging, route_stdlib_logger

# On SIGTERM, open SSE streams end at once (sse-starlette watches uvicorn's exit flag); this bounds
# how long the rest of the requests may take before the process exits.
GRACEFUL_SHUTDOWN_S = 5

# Kernel send buffer of each connection (set on the listener, inherited by accepted sockets). Left to
# autotuning, a client that stops reading could park up to `tcp_wmem` max (4 MB by default) in the
# kernel per connection before the gateway notices; bounded, it stalls within ~0.5 MB, its queue
# fills and the slow-client policy cuts it off. Ample for token streams.
SEND_BUFFER_BYTES = 256 * 1024
# A connection whose peer takes no data for this long (zero window: it stopped reading) is aborted by
# the kernel. Such a client was cut off long before; this frees its socket. Idle streams are unaffected.
STALLED_CONNECTION_TIMEOUT_MS = 30_000


@reports_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    config: ConfigOption = None,
    redis_url: RedisUrlOption = None,
) -> None:
    """Serve the SSE gateway and the live dashboard (http://HOST:PORT/) until SIGINT/SIGTERM; exit 2
    on an address beyond loopback without a credential (docs/security.md)."""
    import uvicorn  # imported here so the other commands don't pay for the web stack

    from lcstream.worker.gateway import create_app
    from lcstream.worker.gateway.auth import auth_required, exposure_problem, is_loopback

    settings = load_settings(config, redis_url=redis_url)
    if (problem := exposure_problem(settings, host)) is not None:
        fail(ExitCode.USAGE, problem)
    configure_logging(settings.log_level, settings.log_format)
    route_stdlib_logger("uvicorn", settings.log_level, settings.log_format)
    log = structlog.get_logger("lcstream.gateway")
    log.info("gateway-starting", host=host, port=port, auth=auth_required(settings))
    if not auth_required(settings) and not is_loopback(host):
        log.warning(
            "gateway-open", detail="LCSTREAM_GATEWAY_AUTH=off: anyone who reaches it reads every message"
        )
    server_config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,  # uvicorn's lines go through structlog (route_stdlib_logger above)
        access_log=False,  # its access lines print query strings (?token=); the app logs each request
        log_level=settings.log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    listener = server_config.bind_socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, STALLED_CONNECTION_TIMEOUT_MS)
    uvicorn.Server(server_config).run(sockets=[listener])
