"""`hotline site render`: Asterisk's configuration for a host, from dialplan/ and the site file.

The security rules themselves run on the rendered result in tests/unit/test_security_config.py;
these tests say what the render puts where.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import main
from ivr.routing import routes
from ivr.routing.dialplan import CHAIN_CONTEXT, Section, chain_dialplan, chain_extension, read_conf, read_dialplan
from ivr.site import config
from ivr.site.render import render
from ivr.site.secrets import Secrets

REPO = Path(__file__).resolve().parents[3]
DIALPLAN = REPO / "dialplan"
EXAMPLE = REPO / "deploy" / "site.example.yaml"
ROUTES = REPO / "routes.yaml"


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    render(config.load(EXAMPLE), DIALPLAN, tmp_path / "etc", Secrets(tmp_path / "secrets"), routes.load(ROUTES))
    return tmp_path / "etc"


def pjsip(etc: Path, name: str, kind: str) -> Section:
    (found,) = [s for s in read_conf(etc / "pjsip.conf") if s.name == name and s.get("type") == kind]
    return found


def test_sip_listens_on_the_sites_address_once_per_transport_in_use(rendered: Path) -> None:
    transports = [s for s in read_conf(rendered / "pjsip.conf") if s.get("type") == "transport"]
    assert [(t.name, t.get("protocol"), t.get("bind")) for t in transports] == [
        ("transport-udp", "udp", "203.0.113.10:5060"),
        ("transport-tcp", "tcp", "203.0.113.10:5060"),
        ("transport-tls", "tls", "203.0.113.10:5061"),
    ]
    tls = transports[2]
    assert (tls.get("cert_file"), tls.get("priv_key_file")) == ("/etc/hotline/tls/sip.crt", "/etc/hotline/tls/sip.key")


def test_only_the_carriers_sbcs_are_identified_as_the_carrier(rendered: Path) -> None:
    assert pjsip(rendered, "carrier-identify", "identify").values("match") == ["198.51.100.7", "198.51.100.8"]
    carrier = pjsip(rendered, "carrier", "endpoint")
    assert (carrier.get("context"), carrier.get("transport"), carrier.get("allow")) == (
        "from-carrier",
        "transport-udp",
        "alaw,ulaw",
    )


def test_callbacks_and_follow_ups_dial_out_on_the_carrier_endpoint_at_its_outbound_address(rendered: Path) -> None:
    """ivr/outbound dials PJSIP/<number>@carrier: without an aor Asterisk has nowhere to send it."""
    carrier = pjsip(rendered, "carrier", "endpoint")
    assert carrier.get("aors") == "carrier"
    assert pjsip(rendered, "carrier", "aor").get("contact") == "sip:198.51.100.7:5060"
    # Dialling out does not widen who may call in: identify still names only the SBCs.
    assert pjsip(rendered, "carrier-identify", "identify").values("match") == ["198.51.100.7", "198.51.100.8"]


def test_each_trunk_is_dialled_at_its_address_over_its_transport(rendered: Path) -> None:
    contacts = {name: pjsip(rendered, name, "aor").get("contact") for name in ("departments", "operators", "partners")}
    assert contacts == {
        "departments": "sip:10.20.0.5:5060",
        "operators": "sip:10.30.0.2:5060\\;transport=tcp",  # `;` unescaped would start a comment
        "partners": "sip:partners.example.gov.cn:5061\\;transport=tls",
    }
    assert pjsip(rendered, "partners", "endpoint").get("transport") == "transport-tls"


def test_endpoints_keep_every_option_of_their_model_in_dialplan(rendered: Path) -> None:
    """A hardening option added to dialplan/pjsip.conf reaches production without touching the render."""
    models = {s.name: s for s in read_conf(DIALPLAN / "pjsip.conf") if s.get("type") == "endpoint"}
    site_keys = {"type", "transport", "allow", "disallow", "aors", "context", "auth"}
    for name, model in (("carrier", "carrier"), ("partners", "departments"), ("operator-2", "operator-1")):
        expected = {(o.key, o.value) for o in models[model].options if o.key not in site_keys}
        got = {(o.key, o.value) for o in pjsip(rendered, name, "endpoint").options}
        assert expected <= got, f"[{name}] lost {expected - got}"


def test_a_seat_registers_one_softphone_with_its_generated_password_from_its_desk_only(
    rendered: Path, tmp_path: Path
) -> None:
    password = (tmp_path / "secrets" / "seat-operator-1.password").read_text().strip()
    auth = pjsip(rendered, "operator-1-auth", "auth")
    assert (auth.get("auth_type"), auth.get("username"), auth.get("password")) == ("userpass", "operator-1", password)
    assert len(password) >= 20
    aor = pjsip(rendered, "operator-1", "aor")
    assert (aor.get("max_contacts"), aor.get("contact")) == ("1", None)
    endpoint = pjsip(rendered, "operator-1", "endpoint")
    assert (endpoint.get("auth"), endpoint.get("context")) == ("operator-1-auth", "from-seat")
    assert pjsip(rendered, "operator-1-identify", "identify").values("match") == ["10.30.0.21"]
    assert (tmp_path / "secrets" / "seat-operator-1.password").stat().st_mode & 0o777 == 0o600


def test_rendering_again_keeps_the_generated_passwords(rendered: Path, tmp_path: Path) -> None:
    first = pjsip(rendered, "operator-2-auth", "auth").get("password")
    render(config.load(EXAMPLE), DIALPLAN, tmp_path / "again", Secrets(tmp_path / "secrets"), routes.load(ROUTES))
    assert pjsip(tmp_path / "again", "operator-2-auth", "auth").get("password") == first


def test_the_dialplan_is_the_labs_without_the_benchmark_and_with_a_dead_end_for_seats(rendered: Path) -> None:
    lab, site = read_dialplan(DIALPLAN / "extensions.conf"), read_dialplan(rendered / "extensions.conf")
    assert set(lab) - set(site) == {"bench-baseline"}
    assert set(site) - set(lab) == {"from-seat", CHAIN_CONTEXT}  # the chains: included, rendered beside it
    for name in ("from-carrier", "hotline-entry", "hotline-fallback", "from-trunk"):
        steps = {exten: [(s.app, s.args) for s in steps] for exten, steps in site[name].extensions.items()}
        assert steps == {exten: [(s.app, s.args) for s in steps] for exten, steps in lab[name].extensions.items()}
    assert {step.app for steps in site["from-seat"].extensions.values() for step in steps} == {"Hangup"}
    assert not [s for s in read_conf(rendered / "pjsip.conf") if s.name.startswith("bench")]


def test_the_ring_chains_of_the_routes_are_rendered_where_extensions_conf_includes_them(rendered: Path) -> None:
    table = routes.load(ROUTES)
    assert "#tryinclude hotline-chains.conf" in (rendered / "extensions.conf").read_text(encoding="utf-8")
    assert (rendered / "hotline-chains.conf").read_text(encoding="utf-8") == chain_dialplan(table)
    chains = read_dialplan(rendered / "hotline-chains.conf")[CHAIN_CONTEXT].extensions
    assert set(chains) == {chain_extension(r) for r in table.routes.values()} | {"i"}
    gongan = chains[chain_extension(table.routes["gongan"])]
    targets = table.routes["gongan"].targets
    assert [s.args for s in gongan if s.app == "Dial"] == [(t.dial_string, str(t.ring_seconds), "gr") for t in targets]


def test_the_ring_chains_follow_the_routes_file_given(tmp_path: Path) -> None:
    edited = tmp_path / "routes.yaml"
    gongan = "    ring_seconds: 20\n    label: 公安局\n"
    edited.write_text(ROUTES.read_text(encoding="utf-8").replace(gongan, gongan.replace("20", "25")))
    table = routes.load(edited)
    render(config.load(EXAMPLE), DIALPLAN, tmp_path / "etc", Secrets(tmp_path / "secrets"), table)

    text = (tmp_path / "etc" / "hotline-chains.conf").read_text(encoding="utf-8")
    assert text == chain_dialplan(table) and text != chain_dialplan(routes.load(ROUTES))


def test_asterisk_conf_points_at_the_hosts_directories(rendered: Path) -> None:
    (directories,) = [s for s in read_conf(rendered / "asterisk.conf") if s.name == "directories"]
    assert directories.get("astetcdir") == "/etc/asterisk"
    assert directories.get("astmoddir") == "/usr/lib/x86_64-linux-gnu/asterisk/modules"
    assert directories.get("astrundir") == "/run/asterisk"


def test_ari_gets_the_generated_password_kept_0600_in_the_secrets(rendered: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secrets" / "ari-password"
    (user,) = [s for s in read_conf(rendered / "ari_users.conf") if s.get("type") == "user"]
    assert user.get("password_format") == "plain"  # why: ivr.site.render.ari_users_conf
    assert user.get("password") == secret.read_text().strip()
    assert secret.stat().st_mode & 0o777 == 0o600


def test_files_are_readable_by_asterisks_group_only(rendered: Path) -> None:
    assert {p.stat().st_mode & 0o777 for p in rendered.iterdir()} == {0o640}


def test_site_render_command_writes_the_files(tmp_path: Path) -> None:
    out, secrets = ["--out", str(tmp_path / "etc")], ["--secrets", str(tmp_path / "s")]
    done = CliRunner().invoke(main, ["site", "render", str(EXAMPLE), *out, *secrets, "--routes", str(ROUTES)])
    assert done.exit_code == 0, done.output
    assert f"{tmp_path / 'etc'}: 23 files rendered" in done.output
    assert (tmp_path / "etc" / "pjsip.conf").is_file() and (tmp_path / "etc" / "ari_users.conf").is_file()
    assert (tmp_path / "etc" / "hotline-chains.conf").is_file()


def test_site_render_stops_at_a_bad_routes_file_with_its_line_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "routes.yaml"
    bad.write_text(ROUTES.read_text(encoding="utf-8").replace("ring_seconds: 20", "ring_seconds: soon", 1))
    out = ["--out", str(tmp_path / "etc"), "--secrets", str(tmp_path / "s")]
    done = CliRunner().invoke(main, ["site", "render", str(EXAMPLE), *out, "--routes", str(bad)])

    assert done.exit_code != 0
    assert f"{bad}:" in done.output and "ring_seconds" in done.output
    assert not (tmp_path / "etc").exists()
