"""`hotline install` → `uninstall` → `install` → `uninstall --purge` in a scratch root: owners, modes, files."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner

from ivr.cli import main
from ivr.install import accounts
from ivr.install.installer import install, uninstall
from ivr.install.layout import Host
from ivr.routing import routes
from ivr.routing.dialplan import chain_dialplan


def tree(host: Host) -> dict[str, tuple[str, str, str]]:
    """Every path under the root except the account files: (type+mode, owner, group) by user/group name."""
    users = {v[0]: k for k, v in _ids(host.path("/etc/passwd")).items()}
    groups = {v[0]: k for k, v in _ids(host.path("/etc/group")).items()}
    out = {}
    for path in sorted(host.root.rglob("*")):
        name = "/" + str(path.relative_to(host.root))
        if name.startswith(("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/.pwd.lock")):
            continue
        st = path.lstat()
        out[name] = (stat.filemode(st.st_mode), users.get(st.st_uid, str(st.st_uid)), groups.get(st.st_gid, "?"))
    return out


def _ids(table: Path) -> dict[str, tuple[int, ...]]:
    return {f[0]: (int(f[2]),) for f in (line.split(":") for line in table.read_text().splitlines()) if len(f) > 2}


EXPECTED = {
    "/etc/hotline": ("drwxr-x---", "root", "hotline"),
    "/etc/hotline/site.yaml": ("-rw-r-----", "root", "hotline"),
    "/etc/hotline/routes.yaml": ("-rw-r-----", "root", "hotline"),
    "/etc/hotline/hotline.env": ("-rw-r-----", "root", "hotline"),
    "/etc/hotline/secrets": ("drwxr-x---", "root", "hotline"),
    "/etc/hotline/secrets/ari-password": ("-rw-------", "hotline", "hotline"),
    "/etc/hotline/secrets/caller-hash.key": ("-rw-------", "hotline", "hotline"),
    "/etc/hotline/secrets/seat-operator-1.password": ("-rw-------", "root", "root"),
    "/etc/hotline/secrets/seat-operator-2.password": ("-rw-------", "root", "root"),
    "/var/lib/hotline": ("drwxr-x---", "hotline", "hotline"),
    "/var/lib/hotline/calllog.sqlite3": ("-rw-r-----", "hotline", "hotline"),
    "/var/lib/hotline/backups": ("drwx------", "root", "root"),
    "/var/log/hotline": ("drwxr-x---", "hotline", "hotline"),
    "/etc/asterisk": ("drwxr-x---", "root", "asterisk"),
    "/etc/asterisk/pjsip.conf": ("-rw-r-----", "root", "asterisk"),
    "/etc/asterisk/ari_users.conf": ("-rw-r-----", "root", "asterisk"),
    "/etc/asterisk/hotline-chains.conf": ("-rw-r-----", "root", "asterisk"),
    "/etc/asterisk.before-hotline/asterisk.conf": ("-rw-r--r--", "root", "root"),
    "/usr/share/asterisk/sounds/hotline/connecting.wav": ("-rw-r--r--", "root", "root"),
    "/var/spool/asterisk/recording": ("drwxr-x---", "asterisk", "asterisk"),
    "/etc/systemd/system/hotline.service": ("-rw-r--r--", "root", "root"),
    "/etc/systemd/system/hotline-backup.timer": ("-rw-r--r--", "root", "root"),
    "/etc/systemd/system/hotline-purge.timer": ("-rw-r--r--", "root", "root"),
    "/etc/logrotate.d/hotline": ("-rw-r--r--", "root", "root"),
}


def test_install_creates_the_user_directories_secrets_and_configuration_with_their_owners(
    host: Host, prompts: Path
) -> None:
    install(host, prompts=prompts, hotline_bin=Path("/opt/hotline/bin/hotline"), live=False)
    got = tree(host)
    assert {path: got.get(path) for path in EXPECTED} == EXPECTED
    assert accounts.user(host, "hotline") is not None
    assert (
        "ExecStart=/opt/hotline/bin/hotline run --routes /etc/hotline/routes.yaml"
        in (host.units / "hotline.service").read_text()
    )
    env = host.env_file.read_text()
    assert "HOTLINE_CALLLOG=/var/lib/hotline/calllog.sqlite3\n" in env and "HOTLINE_LOG_FORMAT=json\n" in env
    assert "; the package's own" not in (host.path("/etc/asterisk/asterisk.conf")).read_text()


def test_install_twice_changes_nothing_and_keeps_the_secrets(host: Host, prompts: Path) -> None:
    install(host, prompts=prompts, live=False)
    before = tree(host)
    secrets = {p.name: p.read_text() for p in host.secrets.iterdir()}
    again = install(host, prompts=prompts, live=False)
    assert tree(host) == before
    assert {p.name: p.read_text() for p in host.secrets.iterdir()} == secrets
    assert not [line for line in again.done if line.startswith(("created", "generated", "wrote", "backed up"))]


def test_an_edited_site_file_is_kept_and_rendered(host: Host, prompts: Path) -> None:
    install(host, prompts=prompts, live=False)
    host.site_file.write_text(host.site_file.read_text().replace("203.0.113.10", "203.0.113.99"))
    install(host, prompts=prompts, live=False)
    assert "203.0.113.99" in host.site_file.read_text()
    assert "bind = 203.0.113.99:5060" in host.path("/etc/asterisk/pjsip.conf").read_text()


def test_the_ring_chains_are_rendered_from_the_hosts_routes_and_follow_its_edits(host: Host, prompts: Path) -> None:
    install(host, prompts=prompts, live=False)
    chains = host.path("/etc/asterisk/hotline-chains.conf")
    assert chains.read_text() == chain_dialplan(routes.load(host.routes_file))
    gongan = "    ring_seconds: 20\n    label: 公安局\n"
    host.routes_file.write_text(host.routes_file.read_text().replace(gongan, gongan.replace("20", "25")))
    install(host, prompts=prompts, live=False)
    assert "Dial(PJSIP/3372000@departments,25,gr)" in chains.read_text()
    assert chains.read_text() == chain_dialplan(routes.load(host.routes_file))


def test_uninstall_keeps_data_and_gives_asterisk_back_its_configuration_install_again_works(
    host: Host, prompts: Path
) -> None:
    install(host, prompts=prompts, live=False)
    password = (host.secrets / "ari-password").read_text()
    uninstall(host, live=False)
    left = tree(host)
    for gone in ("/etc/systemd/system/hotline.service", "/etc/logrotate.d/hotline", "/etc/hotline/hotline.env"):
        assert gone not in left
    assert "/usr/share/asterisk/sounds/hotline" not in left
    assert host.path("/etc/asterisk/asterisk.conf").read_text() == "; the package's own\n[directories](!)\n"
    assert not host.path("/etc/asterisk.before-hotline").exists()
    for kept in ("/etc/hotline/site.yaml", "/etc/hotline/secrets/ari-password", "/var/lib/hotline/calllog.sqlite3"):
        assert kept in left
    assert accounts.user(host, "hotline") is not None

    install(host, prompts=prompts, live=False)
    assert (host.secrets / "ari-password").read_text() == password
    got = tree(host)
    assert {path: got.get(path) for path in EXPECTED} == EXPECTED


def test_uninstall_purge_removes_data_and_the_user(host: Host, prompts: Path) -> None:
    install(host, prompts=prompts, live=False)
    uninstall(host, purge=True, live=False)
    left = tree(host)
    assert not [p for p in left if p.startswith(("/etc/hotline", "/var/lib/hotline", "/var/log/hotline"))]
    assert not [p for p in left if "hotline" in p]
    assert accounts.user(host, "hotline") is None
    assert host.path("/etc/asterisk/asterisk.conf").read_text().startswith("; the package's own")


def test_install_stops_at_a_bad_site_file_with_its_line(host: Host, prompts: Path) -> None:
    install(host, prompts=prompts, live=False)
    host.site_file.write_text(host.site_file.read_text().replace("bind: 203.0.113.10", "bind: somewhere"))
    done = CliRunner().invoke(main, ["install", "--root", str(host.root), "--prompts", str(prompts)])
    assert done.exit_code == 1
    assert f"{host.site_file}:" in done.output and "sip.bind 'somewhere' is not an IP address" in done.output


def test_a_host_without_asterisk_is_told_so(host: Host, prompts: Path) -> None:
    host.path("/etc/hotline").mkdir(parents=True)
    site = (Path(__file__).resolve().parents[3] / "deploy" / "site.example.yaml").read_text()
    host.site_file.write_text(site.replace("user: asterisk", "user: pbx"))
    done = CliRunner().invoke(main, ["install", "--root", str(host.root), "--prompts", str(prompts)])
    assert done.exit_code == 2
    assert "no user 'pbx' on this host: is Asterisk 22 installed?" in done.output
