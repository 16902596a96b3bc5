"""`hotline backup` → wipe → `hotline restore` brings back the same report, secrets and site (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner

from ivr.calllog import open_calllog
from ivr.cli import main
from ivr.install.installer import install
from ivr.install.layout import Host
from tests.pg import running_server
from tests.unit.calllog.workload import traffic


def report(host: Host, calllog: str | None = None) -> dict[str, Any]:
    done = CliRunner().invoke(
        main,
        [
            "report",
            "--from",
            "2026-09-01",
            "--to",
            "2026-09-30",
            "--format",
            "json",
            "--calllog",
            calllog or str(host.state / "calllog.sqlite3"),
            "--routes",
            str(host.routes_file),
        ],
    )
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    for key in ("as_of", "generated_at"):  # the time the report was made, not what it says
        data.pop(key, None)
    return data


def test_backup_wipe_restore_gives_the_same_report(host: Host, prompts: Path) -> None:
    install(host, prompts=prompts, live=False)
    log = open_calllog(host.state / "calllog.sqlite3")
    log.start()
    traffic(log, "bk", 40)  # 2026-09-21, local time
    log.close()
    before = report(host)
    assert before["centre"]["calls"] == 40
    secrets = {p.name: p.read_text() for p in host.secrets.iterdir()}
    site = host.site_file.read_text()

    made = CliRunner().invoke(main, ["backup", "--root", str(host.root)])
    assert made.exit_code == 0, made.output
    archive = Path(made.stdout.strip())
    assert archive.parent == host.backups and archive.stat().st_mode & 0o777 == 0o600
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"manifest.json", "calllog.sqlite3", "etc/site.yaml", "etc/routes.yaml", "etc/secrets"} <= names

    for path in host.state.glob("calllog.sqlite3*"):
        path.unlink()
    for path in sorted(host.etc.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    restored = CliRunner().invoke(main, ["restore", str(archive), "--root", str(host.root)])
    assert restored.exit_code == 0, restored.output

    assert report(host) == before
    assert {p.name: p.read_text() for p in host.secrets.iterdir()} == secrets
    assert host.site_file.read_text() == site
    assert (host.secrets / "ari-password").stat().st_mode & 0o777 == 0o600


def test_backup_keeps_only_the_newest_when_asked(host: Host, prompts: Path) -> None:
    install(host, prompts=prompts, live=False)
    for _ in range(4):
        assert CliRunner().invoke(main, ["backup", "--root", str(host.root), "--keep", "2"]).exit_code == 0
    assert len(list(host.backups.glob("hotline-*.tar.gz"))) == 2


def test_version_names_the_release() -> None:
    done = CliRunner().invoke(main, ["version"])
    assert done.exit_code == 0
    assert done.output.startswith("hotline 0.")


def test_a_postgresql_call_log_is_dumped_and_restored_with_the_same_report(host: Host, prompts: Path) -> None:
    example = (Path(__file__).resolve().parents[3] / "deploy" / "site.example.yaml").read_text()
    with running_server() as server:
        url = server.database()
        host.etc.mkdir(parents=True)
        host.site_file.write_text(example.replace("calllog: /var/lib/hotline/calllog.sqlite3", f"calllog: {url}"))
        install(host, prompts=prompts, live=False)
        log = open_calllog(url)
        log.start()
        traffic(log, "pg", 25)
        log.close()
        before = report(host, url)
        assert before["centre"]["calls"] == 25

        made = CliRunner().invoke(main, ["backup", "--root", str(host.root)])
        assert made.exit_code == 0, made.output
        with tarfile.open(made.stdout.strip()) as tar:
            assert "calllog.pgdump" in tar.getnames()
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("DROP SCHEMA public CASCADE")
            db.execute("CREATE SCHEMA public")
        restored = CliRunner().invoke(main, ["restore", made.stdout.strip(), "--root", str(host.root)])
        assert restored.exit_code == 0, restored.output

        assert report(host, url) == before
