"""The error contract: every exception the hotline raises on purpose is in the ivr.errors tree,
and drivers' exceptions are translated at their boundary, never caught above it."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import ivr
from ivr import errors
from ivr.errors import HotlineError

IVR = Path(ivr.__file__).parent


def modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages([str(IVR)], "ivr.") if not m.name.endswith("__main__")]


def test_every_exception_class_of_the_hotline_is_a_hotline_error() -> None:
    outside = []
    for name in modules():
        for cls_name, cls in inspect.getmembers(importlib.import_module(name), inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException) and not issubclass(cls, HotlineError):
                outside.append(f"{name}.{cls_name}")
    assert outside == []


def test_the_tree_in_the_docstring_names_every_error() -> None:
    defined = {n for n, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, HotlineError)}
    drawn = {line.split("── ")[1].split()[0] for line in (errors.__doc__ or "").splitlines() if "── " in line}
    assert drawn | {"HotlineError"} == defined


def test_database_drivers_are_imported_only_by_the_call_log_backends() -> None:
    importers = []
    for path in IVR.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.split(".")[0] in ("sqlite3", "psycopg") for n in names):
                importers.append(str(path.relative_to(IVR.parent)))
    # evidence.py reads Asterisk's own SQLite file (refused/fallback calls), read-only; its errors are
    # StorageUnavailable too.
    assert sorted(set(importers)) == ["ivr/calllog/evidence.py", "ivr/calllog/postgres.py", "ivr/calllog/sqlite.py"]
