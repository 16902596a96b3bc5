"""Security lint of dialplan/: what Asterisk exposes, and to whom.

The hotline's Asterisk has two doors. SIP faces the carrier: only addresses an `identify` names get
in, nobody can transfer a call elsewhere, and the contexts a caller can reach answer exactly the
published numbers (no catch-all pattern a scanner could use to run up calls). ARI gives full control
of every call: it listens on loopback only, with a generated password (kept plain: see
ivr.site.render.ari_users_conf). AMI is off. Failures land
in Asterisk's security log, where fail2ban reads them (tests/integration/test_sip_security.py).

Asterisk 22's ari.conf has no per-user permit/deny (a user has only type, read_only, password and
password_format; [general] has allowed_origins and auth_realm), and http.conf has no ACL either:
`bindaddr = 127.0.0.1` in http.conf IS the access control of ARI, so this lint pins it.

Each rule runs twice: on dialplan/ as committed (the lab's configuration), and on what `hotline site
render` makes of it for the example site (deploy/site.example.yaml): production must be as locked
down as the lab, with its real addresses, trunks over TCP/TLS and registered seats.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ivr.routing import routes
from ivr.routing.dialplan import CARRIER_CONTEXT, Context, Section, reachable_contexts, read_conf, read_dialplan
from ivr.settings import Settings
from ivr.site import config as site_config
from ivr.site.render import ARI_PASSWORD_FORMAT, ari_users_conf, render
from ivr.site.secrets import Secrets
from lab import manager

REPO = Path(__file__).resolve().parents[2]
DIALPLAN = REPO / "dialplan"
EXAMPLE_SITE = REPO / "deploy" / "site.example.yaml"


@pytest.fixture(scope="module", params=["dialplan", "rendered"], ids=["dialplan/", "site-render"])
def conf(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of Asterisk configuration under test."""
    if request.param == "dialplan":
        return DIALPLAN
    out = tmp_path_factory.mktemp("site-render")
    render(
        site_config.load(EXAMPLE_SITE),
        DIALPLAN,
        out / "etc",
        Secrets(out / "secrets"),
        routes.load(REPO / "routes.yaml"),
    )
    return out / "etc"


def sections(conf: Path, name: str) -> list[Section]:
    return read_conf(conf / name)


def only(conf: Path, name: str, section: str) -> Section:
    found = [s for s in sections(conf, name) if s.name == section]
    assert len(found) == 1, f"{name}: expected one [{section}], found {len(found)}"
    return found[0]


def endpoints(conf: Path) -> list[Section]:
    return [s for s in sections(conf, "pjsip.conf") if s.get("type") == "endpoint" and not s.is_template]


def identifies(conf: Path) -> list[Section]:
    return [s for s in sections(conf, "pjsip.conf") if s.get("type") == "identify"]


def where(section: Section) -> str:
    return f"{section.file}:{section.line} [{section.name}]"


# -- ARI / HTTP / AMI -----------------------------------------------------------------------------


def test_http_and_therefore_ari_listen_on_loopback_only_and_never_over_tls(conf: Path) -> None:
    general = only(conf, "http.conf", "general")
    assert general.get("bindaddr") == "127.0.0.1", where(general)
    assert (general.get("tlsenable") or "no") == "no", f"{where(general)}: TLS would open a second listener"
    assert general.get("tlsbindaddr") is None, where(general)


def test_ami_is_switched_off(conf: Path) -> None:
    assert only(conf, "manager.conf", "general").get("enabled") == "no"


def test_ari_allows_no_cross_origin_browser_access(conf: Path) -> None:
    general = only(conf, "ari.conf", "general")
    assert general.get("enabled") == "yes"
    assert general.get("allowed_origins") in (None, ""), where(general)


def test_no_shipped_file_defines_an_ari_user_or_any_password() -> None:
    """Users come from the generated ari_users.conf; nothing secret is committed."""
    for path in sorted(DIALPLAN.glob("*.conf")):
        for section in read_conf(path):
            assert section.get("type") != "user" or path.name != "ari.conf", where(section)
            for option in section.own:
                assert option.key not in ("password", "secret", "md5_cred"), f"{option.file}:{option.line}"
    (include,) = [line for line in (DIALPLAN / "ari.conf").read_text().splitlines() if line.startswith("#")]
    assert include == "#tryinclude ari_users.conf"


def run_install_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the lab manager's own install_config (what `hotlinectl start-asterisk` runs) on a scratch root.

    Ownership is not what is checked here (and needs root), so chown is a no-op.
    """
    root = tmp_path / "root"
    for d in ("var/lib/asterisk", "var/log/asterisk", "var/spool/asterisk", "usr/share/asterisk/sounds"):
        (root / d).mkdir(parents=True)
    (tmp_path / "ari-password").write_text("Gen3ratedByTheTestNotSetup")
    monkeypatch.setattr(manager.os, "chown", lambda *args, **kwargs: None)
    asterisk = manager.Asterisk(state=tmp_path, root=root)
    monkeypatch.setattr(asterisk, "_root_ids", lambda: (0, 0))
    asterisk.install_config()
    return root / "etc" / "hotline"


def test_the_generated_ari_user_holds_the_password_plain_for_asterisks_group_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain, not a crypt hash: Asterisk checks the password on every ARI request, and a SHA-512 crypt
    check each time cost B 85 -> 65 calls/s on a quiet box (issue 21). What makes plain safe is
    asserted with it: only Asterisk's group can read the file (0640 in a 0750 folder, chowned
    root:asterisk by write_ari_users), and ARI is reachable from this host only (the loopback rule
    above, on the same configuration)."""
    etc = run_install_config(tmp_path, monkeypatch)
    password = (tmp_path / "ari-password").read_text()
    (user,) = [s for s in read_conf(etc / "ari.conf") if s.get("type") == "user"]
    assert user.name == "hotline"
    assert user.get("password_format") == "plain" == ARI_PASSWORD_FORMAT
    assert user.get("password") == password, "ARI would refuse the controller"
    assert stat.S_IMODE((etc / "ari_users.conf").stat().st_mode) == 0o640
    assert stat.S_IMODE(etc.stat().st_mode) == 0o750
    assert only(etc, "http.conf", "general").get("bindaddr") == "127.0.0.1"


def test_the_lab_and_a_rendered_site_decide_the_ari_password_format_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One setting everywhere (the lab, each cluster node, production): the sizing figures transfer."""
    lab = run_install_config(tmp_path, monkeypatch)
    site = tmp_path / "site"
    render(
        site_config.load(EXAMPLE_SITE),
        DIALPLAN,
        site / "etc",
        Secrets(site / "secrets"),
        routes.load(REPO / "routes.yaml"),
    )
    formats = {
        where: [s.get("password_format") for s in read_conf(conf / "ari_users.conf") if s.get("type") == "user"]
        for where, conf in (("lab", lab), ("site", site / "etc"))
    }
    assert formats == {"lab": [ARI_PASSWORD_FORMAT], "site": [ARI_PASSWORD_FORMAT]}


def test_a_password_asterisk_would_read_cut_short_is_refused_naming_where_it_came_from() -> None:
    with pytest.raises(ValueError, match=r"ARI password \(from var/ari-password\).*';'"):
        ari_users_conf("abc;def", "from var/ari-password")


# -- SIP ------------------------------------------------------------------------------------------


def test_sip_identifies_callers_by_source_address_only_and_has_no_anonymous_endpoint(conf: Path) -> None:
    assert only(conf, "pjsip.conf", "global").get("endpoint_identifier_order") == "ip"
    assert not [s for s in sections(conf, "pjsip.conf") if s.name == "anonymous"]
    noload = only(conf, "modules.conf", "modules").values("noload")
    assert "res_pjsip_endpoint_identifier_anonymous.so" in noload
    assert "res_pjsip_endpoint_identifier_user.so" in noload


def test_every_endpoint_refuses_transfers(conf: Path) -> None:
    assert endpoints(conf)
    for endpoint in endpoints(conf):
        assert endpoint.get("allow_transfer") == "no", where(endpoint)


def test_every_endpoint_is_either_identified_by_address_or_an_outbound_trunk_that_refuses_calls_in(
    conf: Path,
) -> None:
    matched = {s.get("endpoint"): s for s in identifies(conf) if s.get("match")}
    contexts = read_dialplan(conf / "extensions.conf")
    for endpoint in endpoints(conf):
        if endpoint.get("aors") is None:  # nothing to dial: it exists to receive calls
            assert endpoint.name in matched, f"{where(endpoint)}: an inbound endpoint needs an identify with match"
            continue
        if endpoint.name in matched:
            continue  # identified inbound trunk: its context is linted below like the carrier's
        context = contexts[endpoint.get("context") or "default"]
        apps = {step.app for steps in context.extensions.values() for step in steps}
        assert apps == {"Hangup"}, f"{where(endpoint)}: unidentified, so its context must only hang up"


def catch_alls(contexts: dict[str, Context], starts: set[str]) -> list[str]:
    """Extensions matching any number in the contexts reachable from `starts`, as FILE:LINE."""
    found = []
    for name in sorted({n for start in starts for n in reachable_contexts(contexts, start)}):
        context = contexts[name]
        for exten, line in context.exten_lines.items():
            if exten.startswith("_") and exten.endswith((".", "!")) or exten in ("i", "t", "a"):
                found.append(f"extensions.conf:{line} [{name}] {exten}")
    return found


def test_contexts_untrusted_callers_reach_answer_exact_numbers_only(conf: Path) -> None:
    """No `_X.`, `_.`, `_!`, `_X!`, `_[0-9].`: anything ending in `.` or `!` matches any number."""
    contexts = read_dialplan(conf / "extensions.conf")
    identified = {s.get("endpoint") for s in identifies(conf)}
    starts = {CARRIER_CONTEXT} | {e.get("context") or "default" for e in endpoints(conf) if e.name in identified}
    assert {CARRIER_CONTEXT, "hotline-entry", "hotline-fallback"} <= set(reachable_contexts(contexts, CARRIER_CONTEXT))
    assert catch_alls(contexts, starts) == []


@pytest.mark.parametrize("pattern", ["_X.", "_.", "_!", "_X!", "_[0-9].", "_1XXXX."])
def test_a_catch_all_pattern_is_found_even_behind_a_goto_and_an_include(tmp_path: Path, pattern: str) -> None:
    conf = tmp_path / "extensions.conf"
    conf.write_text(
        f"[{CARRIER_CONTEXT}]\nexten => 12345,1,Goto(extra,s,1)\n[extra]\n"
        f"exten => s,1,Hangup()\ninclude => wide\n[wide]\nexten => {pattern},1,Dial(PJSIP/${{EXTEN}})\n"
        f"[unreached]\nexten => _X.,1,Hangup()\n"
    )
    assert catch_alls(read_dialplan(conf), {CARRIER_CONTEXT}) == [f"extensions.conf:7 [wide] {pattern}"]


# -- logging and the controller -------------------------------------------------------------------


def test_security_events_have_their_own_log_channel_and_module(conf: Path) -> None:
    channels = only(conf, "logger.conf", "logfiles")
    assert any("security" in [level.strip() for level in option.value.split(",")] for option in channels.own), where(
        channels
    )
    assert "res_security_log.so" not in only(conf, "modules.conf", "modules").values("noload")


def test_the_controllers_metrics_listen_on_loopback_by_default(tmp_path: Path) -> None:
    (tmp_path / "caller-hash.key").write_text("0" * 64)
    settings = Settings.from_env({"HOTLINE_STATE": str(tmp_path), "ARI_PASSWORD": "k3Jq9vXz2LmPq8RtYw4N"})
    assert settings.metrics_addr == ("127.0.0.1", 9345)


def test_asterisk_runs_no_shell_functions_from_outside_the_dialplan(conf: Path) -> None:
    assert only(conf, "asterisk.conf", "options").get("live_dangerously") == "no"
