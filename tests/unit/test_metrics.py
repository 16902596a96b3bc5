"""The metrics facade: Prometheus names and bounded labels, whatever the call flow reports."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ivr.metrics import Metrics
from ivr.routing import routes

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (ROOT / "routes.yaml").read_text(encoding="utf-8")
TABLE = routes.parse(SHIPPED)


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_finished_call_is_counted_by_entry_and_outcome_and_leaves_the_active_gauge() -> None:
    m = Metrics(frozenset({"12345", "12310"}))
    m.call_started()
    m.call_ended("12345", "connected")
    got = samples(m)
    assert got[("hotline_calls_total", (("entry", "12345"), ("outcome", "connected")))] == 1
    assert got[("hotline_active_calls", ())] == 0


def test_label_values_stay_bounded_whatever_is_reported() -> None:
    """A number that is no entry, or an unknown outcome, cannot create new series."""
    m = Metrics(frozenset({"12345"}))
    m.call_started()
    m.call_ended("13800138000", "weird")
    got = samples(m)
    assert got[("hotline_calls_total", (("entry", "other"), ("outcome", "failed")))] == 1
    assert not any("13800138000" in str(key) for key in got)


def test_dial_results_use_prometheus_style_words_and_answers_feed_the_histogram() -> None:
    m = Metrics()
    m.call_routed("市公安局", "merge", "ANSWER", 3.2)
    m.call_routed("市公安局", "merge", "BUSY", 0.1)
    got = samples(m)
    assert got[("hotline_routed_calls_total", (("mode", "merge"), ("result", "answered"), ("unit", "市公安局")))] == 1
    assert got[("hotline_routed_calls_total", (("mode", "merge"), ("result", "busy"), ("unit", "市公安局")))] == 1
    assert got[("hotline_answer_seconds_count", (("mode", "merge"), ("unit", "市公安局")))] == 1
    assert got[("hotline_answer_seconds_bucket", (("le", "5.0"), ("mode", "merge"), ("unit", "市公安局")))] == 1


def test_the_loaded_table_version_is_exported_once() -> None:
    m = Metrics()
    m.set_routes(TABLE)
    m.set_routes(routes.parse(SHIPPED.replace("version: 1 ", "version: 1  ")))
    versions = [k for k in samples(m) if k[0] == "hotline_routes_info"]
    assert len(versions) == 1 and versions[0][1] != (("version", TABLE.digest),)


def test_every_unit_has_its_series_from_the_start_so_a_quiet_unit_shows_zero() -> None:
    m = Metrics()
    m.set_routes(TABLE)
    got = samples(m)
    units = {r.unit for r in TABLE.routes.values()}
    answered = {
        dict(k[1])["unit"]
        for k, v in got.items()
        if k[0] == "hotline_routed_calls_total" and dict(k[1])["result"] == "answered" and v == 0
    }
    overdue = {dict(k[1])["unit"] for k in got if k[0] == "hotline_tickets_overdue"}
    assert answered == units == overdue
    assert got[("hotline_webhook_deliveries_total", (("partner", "market-regulation"), ("result", "gave_up")))] == 0


def test_reloads_and_ari_state_are_counted() -> None:
    m = Metrics()
    m.ari_connected(first=True)
    m.ari_disconnected()
    m.ari_connected(first=False)
    m.routes_reloaded(ok=False)
    got = samples(m)
    assert got[("hotline_ari_connected", ())] == 1 and got[("hotline_ari_reconnects_total", ())] == 1
    assert got[("hotline_routes_reloads_total", (("result", "refused"),))] == 1
    assert got[("hotline_routes_reloads_total", (("result", "ok"),))] == 0


def test_the_call_logs_journal_and_write_counters_are_read_at_each_scrape() -> None:
    class Log:
        journal_pending, journaled_total, replayed_total, lost_total, failed_writes = 3, 10, 7, 0, 1

    m = Metrics()
    log = Log()
    m.watch_calllog(log)
    got = samples(m)
    assert got[("hotline_calllog_journal_pending", ())] == 3
    assert got[("hotline_calllog_journaled_writes_total", ())] == 10
    assert got[("hotline_calllog_replayed_writes_total", ())] == 7
    assert got[("hotline_calllog_lost_writes_total", ())] == 0
    assert got[("hotline_calllog_dropped_writes_total", ())] == 1
    log.journal_pending = 0
    assert samples(m)[("hotline_calllog_journal_pending", ())] == 0


def test_the_callback_lists_oldest_open_entry_is_exported_as_its_age_and_an_empty_list_as_zero() -> None:
    m = Metrics()
    m.set_callbacks_oldest([1000.0, 400.0, 900.0], now=4000.0)
    assert samples(m)[("hotline_callbacks_oldest_open_seconds", ())] == 3600
    m.set_callbacks_oldest([], now=5000.0)
    assert samples(m)[("hotline_callbacks_oldest_open_seconds", ())] == 0


def test_admission_refusals_are_counted_from_the_start() -> None:
    m = Metrics()
    assert samples(m)[("hotline_admission_refused_calls_total", ())] == 0  # rate() sees the first refusal
    m.call_refused()
    assert samples(m)[("hotline_admission_refused_calls_total", ())] == 1


def test_admission_shows_its_limit_and_the_signals_it_follows() -> None:
    m = Metrics()
    m.admission_seen(limit=40.0, in_setup=3, ari_p90_s=0.004, loop_lag_s=0.001)
    m.admission_seen(limit=20.0, in_setup=5, ari_p90_s=None, loop_lag_s=0.2)  # no ARI request in this probe
    got = samples(m)
    assert got[("hotline_admission_setup_limit", ())] == 20
    assert got[("hotline_admission_calls_in_setup", ())] == 5
    assert got[("hotline_ari_response_p90_seconds", ())] == 0.004  # the last figure stands
    assert got[("hotline_event_loop_lag_seconds", ())] == 0.2


def test_a_call_counts_once_against_its_unit_when_its_ring_chain_was_dialled() -> None:
    m = Metrics()
    m.set_routes(TABLE)
    m.unit_call_ended("市公安局", "merge", ["department", "overflow"], "ANSWER")  # overflow answered: one call
    m.unit_call_ended("市公安局", "merge", ["department"], "BUSY")
    m.unit_call_ended("市公安局", "merge", [], "")  # hung up while "connecting": never dialled
    m.unit_call_ended("市公安局", "merge", ["operators"], "")  # straight to the operators: not the unit's
    m.unit_call_ended("", "", ["department"], "ANSWER")  # no unit: nothing
    got = samples(m)
    key = "hotline_unit_calls_total"
    assert got[(key, (("mode", "merge"), ("result", "answered"), ("unit", "市公安局")))] == 1
    assert got[(key, (("mode", "merge"), ("result", "not_answered"), ("unit", "市公安局")))] == 1


def test_ari_requests_are_read_from_the_clients_counts_at_each_scrape() -> None:
    class Client:
        sent = {("POST", "channels"): 5, ("DELETE", "playbacks"): 1}

    m = Metrics()
    client = Client()
    m.watch_ari_requests(client)
    got = samples(m)
    assert got[("hotline_ari_requests_total", (("method", "POST"), ("resource", "channels")))] == 5
    assert got[("hotline_ari_requests_total", (("method", "DELETE"), ("resource", "playbacks")))] == 1
    client.sent[("GET", "channels")] = 2
    assert samples(m)[("hotline_ari_requests_total", (("method", "GET"), ("resource", "channels")))] == 2
