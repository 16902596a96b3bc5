"""录音抽检: a reproducible random sample of recorded calls, and the score form (qa.yaml) they are scored on.

The sample is drawn per unit (calls a department took) and per operator seat (calls an
operator took): each group's recordings are sorted by name and `Random(seed)` picks from each
group in turn, in sorted group order, so the same period, numbers and seed give the same sample.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.routing.yamlsrc import Source


@dataclass(frozen=True)
class Criterion:
    id: str
    title: str
    max: int


def load_form(path: str | Path) -> tuple[Criterion, ...]:
    """The criteria of the score form; RoutesError-style FILE:LINE problems (ConfigError) if wrong."""
    src = Source(str(path), Path(path).read_text(encoding="utf-8"))
    top = src.root().mapping(allowed={"criteria"}, required={"criteria"}) or {}
    criteria: list[Criterion] = []
    for node in (top["criteria"].sequence() or []) if "criteria" in top else []:
        fields = node.mapping(allowed={"id", "title", "max"}, required={"id", "title", "max"}) or {}
        cid = (
            fields["id"].string(r"[a-z][a-z0-9_-]{0,31}", "an id (lower-case letters, digits, - and _)")
            if "id" in fields
            else None
        )
        title = fields["title"].string() if "title" in fields else None
        top_points = fields["max"].integer(1, 100) if "max" in fields else None
        if cid and any(c.id == cid for c in criteria):
            fields["id"].problem(f"criterion '{cid}' is listed twice")
            continue
        if cid and title and top_points:
            criteria.append(Criterion(cid, title, top_points))
    src.raise_if_problems()
    return tuple(criteria)


def check_scores(form: Sequence[Criterion], given: Mapping[str, int]) -> list[str]:
    """What is wrong with a filled-in form (empty when it is complete and in range)."""
    known = {c.id: c for c in form}
    wrong = [f"unknown criterion '{k}' (one of: {', '.join(known)})" for k in given if k not in known]
    wrong += [
        f"{c.id} must be 0..{c.max}, got {given[c.id]}" for c in form if c.id in given and not 0 <= given[c.id] <= c.max
    ]
    wrong += [f"{c.id} ({c.title}) is not scored" for c in form if c.id not in given]
    return wrong


def group_of(row: Mapping[str, Any]) -> tuple[str, str]:
    """('operator', seat) for a call an operator took, else ('unit', unit)."""
    if row.get("outcome") == "operator":
        return "operator", str(row.get("party") or "")
    return "unit", str(row.get("unit") or "")


def sample(rows: Sequence[Mapping[str, Any]], per_unit: int, per_operator: int, seed: int) -> list[Mapping[str, Any]]:
    """Up to `per_unit` recordings of each unit and `per_operator` of each operator seat, drawn with `seed`."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(group_of(row), []).append(row)
    rng = random.Random(seed)
    drawn: list[Mapping[str, Any]] = []
    for key in sorted(groups):
        n = per_operator if key[0] == "operator" else per_unit
        members = sorted(groups[key], key=lambda r: str(r["name"]))
        drawn += sorted(rng.sample(members, min(n, len(members))), key=lambda r: str(r["name"]))
    return drawn
