"""Alertmanager's webhook payload turned into the messages the centre's chat robots accept.

Alertmanager's `webhook_config` always POSTs its own JSON (version "4"); the duty groups live in
政务微信 (WeCom) and 钉钉 (DingTalk), whose group robots take only their own shapes:

    WeCom group robot:    {"msgtype": "markdown", "markdown": {"content": "..."}}       (≤ 4096 bytes)
    DingTalk group robot: {"msgtype": "markdown", "markdown": {"title": "...", "text": "..."},
                           "at": {"atMobiles": [...], "isAtAll": false}}                 (≤ 20000 bytes)
    generic JSON:         our own small, stable schema (`json_message`) for the centre's systems

The texts are written for the people in those groups: Chinese first, one line per fact, times in
Beijing time, the alert's own summary/description (monitoring/alerts.yml) as the body.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ivr.errors import AlertPayloadError as PayloadError
from ivr.timekeeping import LOCAL_TZ

FORMATS = ("json", "wecom", "dingtalk")
WECOM_MAX_BYTES = 4096
DINGTALK_MAX_BYTES = 20000
SEVERITY_WORDS = {"critical": "紧急 critical", "warning": "警告 warning"}
# WeCom markdown has three font colours; "warning" is its orange-red.
WECOM_COLOURS = {"critical": "warning", "warning": "comment", "resolved": "info"}


@dataclass(frozen=True)
class Alert:
    status: str  # firing | resolved
    name: str
    severity: str
    unit: str
    summary: str
    description: str
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    url: str
    labels: dict[str, str]


@dataclass(frozen=True)
class Notification:
    """One Alertmanager notification: a group of alerts sharing the route's group_by labels."""

    receiver: str
    status: str
    group: dict[str, str]
    alerts: list[Alert]
    external_url: str
    truncated: int

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "resolved"]


def parse(payload: Any) -> Notification:
    """Read Alertmanager's webhook JSON (version 4); PayloadError names the first thing missing."""
    if not isinstance(payload, dict):
        raise PayloadError("the body must be a JSON object")
    alerts_raw = payload.get("alerts")
    if not isinstance(alerts_raw, list):
        raise PayloadError("'alerts' must be a list")
    alerts = []
    for i, raw in enumerate(alerts_raw):
        if not isinstance(raw, dict) or not isinstance(raw.get("labels"), dict):
            raise PayloadError(f"alerts[{i}] must be an object with 'labels'")
        labels = {str(k): str(v) for k, v in raw["labels"].items()}
        annotations = raw.get("annotations") or {}
        alerts.append(
            Alert(
                status=str(raw.get("status", "firing")),
                name=labels.get("alertname", "?"),
                severity=labels.get("severity", ""),
                unit=labels.get("unit", ""),
                summary=str(annotations.get("summary", "")).strip(),
                description=" ".join(str(annotations.get("description", "")).split()),
                starts_at=_time(raw.get("startsAt")),
                ends_at=_time(raw.get("endsAt")),
                url=str(raw.get("generatorURL", "")),
                labels=labels,
            )
        )
    return Notification(
        receiver=str(payload.get("receiver", "")),
        status=str(payload.get("status", "firing")),
        group={str(k): str(v) for k, v in (payload.get("groupLabels") or {}).items()},
        alerts=alerts,
        external_url=str(payload.get("externalURL", "")),
        truncated=int(payload.get("truncatedAlerts") or 0),
    )


def _time(value: Any) -> dt.datetime | None:
    """Alertmanager's RFC 3339 time (nanoseconds, Z) in Beijing time; its zero time means 'not ended'."""
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    head, _, tail = value.partition(".")
    zone = tail.lstrip("0123456789") if tail else ""
    try:
        when = dt.datetime.fromisoformat(head + (zone or ""))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(LOCAL_TZ)


def _clock(when: dt.datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S") if when else "—"


def title(n: Notification) -> str:
    """One line: 【告警】/【恢复】, the alert name(s), the unit when the group is one unit's."""
    head = "【告警】" if n.status == "firing" else "【恢复】"
    names = sorted({a.name for a in n.alerts})
    unit = n.group.get("unit") or (n.alerts[0].unit if len({a.unit for a in n.alerts}) == 1 and n.alerts else "")
    count = f" ×{len(n.firing)}" if len(n.firing) > 1 else ""
    return f"{head}{', '.join(names)}{count}{' · ' + unit if unit else ''}"


def _markdown_lines(a: Alert, coloured: bool) -> list[str]:
    state = "已恢复" if a.status == "resolved" else SEVERITY_WORDS.get(a.severity, a.severity or "—")
    if coloured:
        colour = WECOM_COLOURS["resolved" if a.status == "resolved" else a.severity] if a.severity else "comment"
        state = f'<font color="{colour}">{state}</font>'
    lines = [f"**{a.summary or a.name}**", f"> 级别：{state}"]
    if a.unit:
        lines.append(f"> 单位：{a.unit}")
    extra = {k: v for k, v in a.labels.items() if k in ("cause", "partner", "instance")}
    for key, value in extra.items():
        lines.append(f"> {key}：{value}")
    lines.append(f"> 开始：{_clock(a.starts_at)}（北京时间）")
    if a.status == "resolved":
        lines.append(f"> 恢复：{_clock(a.ends_at)}（北京时间）")
    if a.description:
        lines.append(a.description)
    if a.url:
        lines.append(f"[查看规则]({a.url})")
    return lines


def markdown(n: Notification, *, coloured: bool, limit: int) -> str:
    """The message body in robot markdown, cut at whole alerts to stay under `limit` UTF-8 bytes."""
    out = [f"## {title(n)}"]
    shown = 0
    ordered = n.firing + n.resolved
    for a in ordered:
        block = "\n".join(["", *_markdown_lines(a, coloured)])
        # Room kept for the "…另有 N 条" line and the robot's own @mentions.
        if shown and len("\n".join(out).encode()) + len(block.encode()) + 160 > limit:
            break
        out.append(block)
        shown += 1
    hidden = len(ordered) - shown + n.truncated
    if hidden:
        out.append(f"\n…另有 {hidden} 条，见 Alertmanager {n.external_url}".rstrip())
    text = "\n".join(out)
    while len(text.encode()) > limit:  # one alert alone longer than the limit: cut its text
        text = text[: len(text) - 64] + "…"
    return text


def wecom_message(n: Notification) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": markdown(n, coloured=True, limit=WECOM_MAX_BYTES)}}


def dingtalk_message(n: Notification, at_mobiles: tuple[str, ...] = ()) -> dict[str, Any]:
    text = markdown(n, coloured=False, limit=DINGTALK_MAX_BYTES - 200)
    if at_mobiles and n.status == "firing":
        # DingTalk notifies only the numbers that also appear as @number in the text.
        text += "\n\n" + " ".join(f"@{m}" for m in at_mobiles)
    return {
        "msgtype": "markdown",
        "markdown": {"title": title(n), "text": text},
        "at": {"atMobiles": list(at_mobiles) if n.status == "firing" else [], "isAtAll": False},
    }


def json_message(n: Notification) -> dict[str, Any]:
    """The generic format: one object per notification, each alert flattened to what a system needs."""
    return {
        "source": "hotline12345",
        "title": title(n),
        "status": n.status,
        "receiver": n.receiver,
        "group": n.group,
        "alerts": [
            {
                "status": a.status,
                "name": a.name,
                "severity": a.severity,
                "unit": a.unit,
                "summary": a.summary,
                "description": a.description,
                "starts_at": a.starts_at.isoformat() if a.starts_at else None,
                "ends_at": a.ends_at.isoformat() if a.ends_at else None,
                "url": a.url,
                "labels": a.labels,
            }
            for a in n.alerts
        ],
        "truncated": n.truncated,
    }


def render(fmt: str, n: Notification, at_mobiles: tuple[str, ...] = ()) -> dict[str, Any]:
    if fmt == "wecom":
        return wecom_message(n)
    if fmt == "dingtalk":
        return dingtalk_message(n, at_mobiles)
    if fmt == "json":
        return json_message(n)
    raise ValueError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
