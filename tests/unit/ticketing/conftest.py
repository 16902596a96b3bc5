"""The ticketing tests run on both call-log backends, like the call log's own (tests/unit/calllog/conftest.py)."""

from tests.unit.calllog.conftest import backend, pg_server, target

__all__ = ["backend", "pg_server", "target"]
