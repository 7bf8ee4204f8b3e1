"""The `lcstream` command line: one app, its commands from the modules of this package.

Every command reports errors the same way: one line on stderr, `lcstream <command>: ...`, and an exit code
from `common.ExitCode` (docs/operations.md has the table).
"""

from __future__ import annotations

import typer

from lcstream.worker.cli.dead import dead_app
from lcstream.worker.cli.inspect import export, replay, result, tail
from lcstream.worker.cli.jobs import cancel, enqueue
from lcstream.worker.cli.publish import publish
from lcstream.worker.cli.run import demo, health, worker
from lcstream.worker.cli.serve import serve
from lcstream.worker.cli.stats import stats
from lcstream.worker.cli.tokens import token

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: no boxes, no type column, nothing wrapped mid-word in a pipe
    help="Carry LangChain chat-model streams through Redis Streams.",
)
for command in (
    worker,
    serve,
    demo,
    health,
    publish,
    tail,
    result,
    replay,
    export,
    stats,
    enqueue,
    cancel,
    token,
):
    app.command()(command)
app.add_typer(dead_app, name="dead")
