"""The chat robots' messages, rendered from one Alertmanager webhook payload (payload.json: a
unit's answer-rate alert firing and an older one resolved, as Alertmanager 0.25 sends them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ivr.alerts import render

PAYLOAD = Path(__file__).with_name("payload.json")


def payload() -> dict[str, Any]:
    return json.loads(PAYLOAD.read_text(encoding="utf-8"))


def test_reads_alertmanager_times_in_beijing_time_and_its_zero_end_as_not_ended() -> None:
    n = render.parse(payload())
    firing, resolved = n.alerts
    assert firing.starts_at is not None and firing.starts_at.strftime("%Y-%m-%d %H:%M:%S") == "2026-12-05 09:02:03"
    assert firing.ends_at is None
    assert resolved.ends_at is not None and resolved.ends_at.strftime("%H:%M:%S") == "08:30:00"
    assert (n.receiver, n.status, n.group["unit"]) == ("unit-liaison", "firing", "市住建局")
    assert [a.name for a in n.firing] == ["HotlineUnitAnswerRateLow"]


def test_wecom_robot_gets_markdown_with_severity_colour_unit_time_and_description() -> None:
    message = render.wecom_message(render.parse(payload()))
    assert message["msgtype"] == "markdown" and set(message) == {"msgtype", "markdown"}
    content = message["markdown"]["content"]
    lines = content.splitlines()
    assert lines[0] == "## 【告警】HotlineUnitAnswerRateLow · 市住建局"
    assert "**市住建局 answers only 40% of transferred calls (接听率低)**" in lines
    assert '> 级别：<font color="comment">警告 warning</font>' in lines
    assert "> 单位：市住建局" in lines
    assert "> 开始：2026-12-05 09:02:03（北京时间）" in lines
    # Alertmanager folds the description over lines; the message keeps it as one paragraph.
    assert (
        "Over the last 15 minutes 市住建局 answered 40% of the attempts to reach its lines "
        "(department, overflow or partner), below 80 %." in lines
    )
    assert "[查看规则](http://127.0.0.1:9090/graph?g0.expr=hotline%3Aunit_answer_ratio%3Arate15m)" in lines
    # The resolved alert follows the firing one, marked as recovered with its end time.
    assert content.index("40%") < content.index("70%")
    assert '> 级别：<font color="info">已恢复</font>' in lines
    assert "> 恢复：2026-12-05 08:30:00（北京时间）" in lines


def test_dingtalk_robot_gets_title_text_and_mentions_only_while_firing() -> None:
    n = render.parse(payload())
    message = render.dingtalk_message(n, at_mobiles=("13800000000",))
    assert message["msgtype"] == "markdown"
    assert message["markdown"]["title"] == "【告警】HotlineUnitAnswerRateLow · 市住建局"
    text = message["markdown"]["text"]
    assert "<font" not in text  # DingTalk shows no WeCom colour tags
    assert "> 级别：警告 warning" in text.splitlines()
    assert text.endswith("@13800000000")  # DingTalk notifies only numbers also written in the text
    assert message["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}

    raw = payload()
    raw["status"] = "resolved"
    for alert in raw["alerts"]:
        alert["status"] = "resolved"
    recovered = render.dingtalk_message(render.parse(raw), at_mobiles=("13800000000",))
    assert recovered["markdown"]["title"].startswith("【恢复】")
    assert recovered["at"]["atMobiles"] == [] and "@13800000000" not in recovered["markdown"]["text"]


def test_generic_json_flattens_each_alert() -> None:
    message = render.json_message(render.parse(payload()))
    assert message["source"] == "hotline12345" and message["status"] == "firing"
    assert message["title"] == "【告警】HotlineUnitAnswerRateLow · 市住建局"
    first = message["alerts"][0]
    assert first["name"] == "HotlineUnitAnswerRateLow" and first["unit"] == "市住建局"
    assert first["severity"] == "warning" and first["starts_at"] == "2026-12-05T09:02:03+08:00"
    assert first["ends_at"] is None and first["labels"]["service"] == "hotline12345"
    json.dumps(message)  # serialisable as it stands


def test_a_storm_is_cut_at_whole_alerts_under_the_wecom_limit_and_says_how_many_are_left_out() -> None:
    raw = payload()
    template = raw["alerts"][0]
    raw["alerts"] = [
        {**template, "labels": {**template["labels"], "unit": f"单位{i}"}, "fingerprint": str(i)} for i in range(200)
    ]
    raw["truncatedAlerts"] = 5
    content = render.wecom_message(render.parse(raw))["markdown"]["content"]
    assert len(content.encode()) <= render.WECOM_MAX_BYTES
    shown = content.count("> 单位：")
    assert 0 < shown < 200
    assert f"…另有 {200 - shown + 5} 条，见 Alertmanager http://127.0.0.1:9093" in content
    assert "×200" in content.splitlines()[0]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "the body must be a JSON object"),
        ({"status": "firing"}, "'alerts' must be a list"),
        ({"alerts": [{"status": "firing"}]}, "alerts[0] must be an object with 'labels'"),
    ],
)
def test_a_body_that_is_not_alertmanagers_is_refused_naming_what_is_missing(body: object, problem: str) -> None:
    with pytest.raises(render.PayloadError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        render.parse(body)
