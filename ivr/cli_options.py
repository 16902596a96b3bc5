"""Options every `hotline` command group shares, said once so their help and defaults agree."""

from __future__ import annotations

import click

calllog_option = click.option(
    "--calllog",
    default=None,
    type=click.Path(dir_okay=False),
    help="The call log: an SQLite file, or a PostgreSQL URL (postgresql://user@host/db) "
    "[default: $HOTLINE_CALLLOG, else $HOTLINE_STATE/calllog.sqlite3].",
)
by_option = click.option("--by", default=None, help="Who does this (default: the unix user running the command).")
