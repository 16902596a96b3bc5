"""The call log's tables of recordings (schema step of ivr.calllog.backend.SCHEMA_VERSION).

`recordings` holds one row per kept file: a call's answered leg (kind `call`, named
`<call_id>-<leg>`) or a citizen's message (kind `message`, `hotline-msg-<call_id>`), with its
SHA-256, length in seconds and size; a message also says who handled it. `recording_exports`
is the log of every export (who, which, why). `qa_scores` holds the 录音抽检 score forms:
one row per call and criterion.
"""

from __future__ import annotations

from ivr.calllog import dialects

_TABLES = """CREATE TABLE IF NOT EXISTS recordings (
    name {text} PRIMARY KEY,
    call_id {text} NOT NULL,
    kind {text} NOT NULL CHECK (kind IN ('call', 'message')),
    party {text} NOT NULL DEFAULT '',
    path {text} NOT NULL DEFAULT '',
    started_at {real} NOT NULL,
    seconds {real} NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0,
    sha256 {text} NOT NULL DEFAULT '',
    handled_at {real},
    handled_by {text} NOT NULL DEFAULT ''
)
CREATE INDEX IF NOT EXISTS recordings_call ON recordings (call_id)
CREATE INDEX IF NOT EXISTS recordings_started ON recordings (kind, started_at)
CREATE TABLE IF NOT EXISTS recording_exports (
    id {serial},
    at {real} NOT NULL,
    who {text} NOT NULL,
    reason {text} NOT NULL,
    name {text} NOT NULL,
    dest {text} NOT NULL DEFAULT ''
)
CREATE TABLE IF NOT EXISTS qa_scores (
    call_id {text} NOT NULL,
    criterion {text} NOT NULL,
    score integer NOT NULL,
    reviewer {text} NOT NULL DEFAULT '',
    sample {text} NOT NULL DEFAULT '',
    note {text} NOT NULL DEFAULT '',
    at {real} NOT NULL,
    PRIMARY KEY (call_id, criterion)
)"""


SQLITE_RECORDINGS, POSTGRES_RECORDINGS = dialects.both(_TABLES)
