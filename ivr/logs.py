"""Structured logs: one key=value (or JSON) line per event, with the call's identity bound.

The session binds call_id/entry/channel once with structlog's contextvars, so every line
logged while handling that call — in any module — carries them without passing them around.
Caller numbers never reach a log line in clear: log `ivr.privacy.mask(number)`.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "info", fmt: str = "kv") -> None:
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    else:
        renderer = structlog.processors.KeyValueRenderer(key_order=["ts", "level", "event"], sort_keys=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
