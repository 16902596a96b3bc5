"""Controller settings: a guessable ARI password stops the controller before it connects."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ivr.errors import ConfigError
from ivr.settings import MIN_PASSWORD_LENGTH, Settings, Storage

REPO = Path(__file__).resolve().parents[2]
STRONG = "k3Jq9vXz2LmPq8RtYw4N"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    (tmp_path / "caller-hash.key").write_text("0" * 64)
    return tmp_path


def settings(state: Path, **env: str) -> Settings:
    return Settings.from_env({"HOTLINE_STATE": str(state), **env})


@pytest.mark.parametrize(
    "password",
    ["asterisk", "hotline", "secret", "password", "changeme", "admin", "1234", "123456", "Asterisk", "PASSWORD"],
)
def test_a_well_known_default_ari_password_is_refused_naming_the_variable(state: Path, password: str) -> None:
    with pytest.raises(ConfigError, match=r"^ARI_PASSWORD: the ARI password is a well-known default"):
        settings(state, ARI_PASSWORD=password)


def test_a_short_ari_password_is_refused_with_the_minimum_length(state: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=rf"^ARI_PASSWORD: the ARI password has 11 characters, at least "
        rf"{MIN_PASSWORD_LENGTH}",
    ):
        settings(state, ARI_PASSWORD="x7#kQ2!pLm9")


def test_a_weak_password_in_the_password_file_names_the_file(state: Path) -> None:
    (state / "ari-password").write_text("asterisk\n")
    with pytest.raises(ConfigError, match=rf"^ARI_PASSWORD_FILE \({state / 'ari-password'}\): .*well-known default"):
        settings(state)


def test_test_mode_accepts_a_weak_password_for_labs_and_unit_tests(state: Path) -> None:
    assert settings(state, ARI_PASSWORD="secret", HOTLINE_TEST_MODE="1").ari.password == "secret"


@pytest.mark.parametrize("mode", ["0", "yes", "true", ""])
def test_only_test_mode_1_relaxes_the_check(state: Path, mode: str) -> None:
    with pytest.raises(ConfigError):
        settings(state, ARI_PASSWORD="secret", HOTLINE_TEST_MODE=mode)


def test_a_strong_password_is_accepted(state: Path) -> None:
    assert settings(state, ARI_PASSWORD=STRONG).ari.password == STRONG


def test_the_password_hotlinectl_setup_generates_is_accepted(tmp_path: Path) -> None:
    """Run hotlinectl's own setup_secrets (lifted out of the script) and load what it wrote."""
    script = (REPO / "hotlinectl").read_text()
    body = script[script.index("setup_secrets() {") :]
    body = body[: body.index("\n}\n") + 3]
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f"say() {{ :; }}\n{body}\nsetup_secrets"],
        env={**os.environ, "PW_FILE": str(tmp_path / "ari-password"), "KEY_FILE": str(tmp_path / "caller-hash.key")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    password = (tmp_path / "ari-password").read_text()
    assert password.isalnum()  # base64 with /+= dropped: about 23 characters
    assert Settings.from_env({"HOTLINE_STATE": str(tmp_path)}).ari.password == password


def test_a_cluster_node_id_goes_into_the_settings_and_a_malformed_one_is_refused(tmp_path: Path) -> None:
    env = {"ARI_PASSWORD": "a-long-random-password", "HOTLINE_STATE": str(tmp_path)}
    (tmp_path / "caller-hash.key").write_text("k" * 64)
    assert Settings.from_env({**env, "HOTLINE_NODE": "node1"}).node == "node1"
    assert Settings.from_env(env).node == ""
    with pytest.raises(ConfigError, match="HOTLINE_NODE"):
        Settings.from_env({**env, "HOTLINE_NODE": "node 1;"})


def test_the_call_rate_limit_is_a_number_of_calls_per_second(tmp_path: Path) -> None:
    env = {"ARI_PASSWORD": "a-long-random-password", "HOTLINE_STATE": str(tmp_path)}
    (tmp_path / "caller-hash.key").write_text("k" * 64)
    assert Settings.from_env(env).max_call_rate == 0
    assert Settings.from_env({**env, "HOTLINE_MAX_CALL_RATE": "30"}).max_call_rate == 30
    for bad in ("fast", "-1"):
        with pytest.raises(ConfigError, match="HOTLINE_MAX_CALL_RATE"):
            Settings.from_env({**env, "HOTLINE_MAX_CALL_RATE": bad})


def test_admission_is_adaptive_by_default_and_a_fixed_rate_is_an_override(tmp_path: Path) -> None:
    env = {"ARI_PASSWORD": "a-long-random-password", "HOTLINE_STATE": str(tmp_path)}
    (tmp_path / "caller-hash.key").write_text("k" * 64)
    assert Settings.from_env(env).admission == "adaptive"
    assert Settings.from_env(env).admission_max_setups == 400
    assert Settings.from_env({**env, "HOTLINE_MAX_CALL_RATE": "30"}).admission == "fixed"
    assert Settings.from_env({**env, "HOTLINE_ADMISSION": "off"}).admission == "off"
    assert Settings.from_env({**env, "HOTLINE_ADMISSION_MAX_SETUPS": "3"}).admission_max_setups == 3
    for bad, named in (
        ({"HOTLINE_ADMISSION": "smart"}, "HOTLINE_ADMISSION must be adaptive, fixed or off"),
        ({"HOTLINE_ADMISSION": "fixed"}, "needs HOTLINE_MAX_CALL_RATE"),
        ({"HOTLINE_ADMISSION": "adaptive", "HOTLINE_MAX_CALL_RATE": "30"}, "HOTLINE_MAX_CALL_RATE=30"),
        ({"HOTLINE_ADMISSION_MAX_SETUPS": "0"}, "HOTLINE_ADMISSION_MAX_SETUPS"),
        ({"HOTLINE_ADMISSION_MAX_SETUPS": "many"}, "HOTLINE_ADMISSION_MAX_SETUPS"),
    ):
        with pytest.raises(ConfigError, match=named):
            Settings.from_env({**env, **bad})


# -- where the state is: one loader for the controller and every command ----------------------------------


def test_storage_defaults_to_the_state_folder_and_the_journal_beside_the_file() -> None:
    storage = Storage.from_env({"HOTLINE_STATE": "/srv/h"})
    assert (storage.state, storage.calllog, storage.journal) == (
        Path("/srv/h"),
        Path("/srv/h/calllog.sqlite3"),
        Path("/srv/h/calllog.sqlite3.journal"),
    )
    assert Storage.from_env({}).calllog == Path("var/calllog.sqlite3")  # the folder it runs in, as ever


def test_a_database_url_journals_in_the_state_folder_and_stays_out_of_repr() -> None:
    url = "postgresql://hotline:s3cret@db/calllog"
    storage = Storage.from_env({"HOTLINE_STATE": "/srv/h", "HOTLINE_CALLLOG": url})
    assert (storage.calllog, storage.journal) == (url, Path("/srv/h/calllog.journal"))
    assert "s3cret" not in repr(storage)


def test_a_commands_flags_win_over_the_environment() -> None:
    env = {"HOTLINE_STATE": "/srv/h", "HOTLINE_CALLLOG": "/srv/other.sqlite3", "HOTLINE_JOURNAL": "/disk2/j"}
    assert Storage.from_env(env).journal == Path("/disk2/j")
    flagged = Storage.from_env(env, calllog="/tmp/x.sqlite3", journal="/tmp/j")
    assert (flagged.calllog, flagged.journal) == (Path("/tmp/x.sqlite3"), Path("/tmp/j"))


def test_the_controller_reads_its_storage_with_the_same_loader(state: Path) -> None:
    env = {"HOTLINE_STATE": str(state), "ARI_PASSWORD": STRONG, "HOTLINE_CALLLOG": str(state / "log.sqlite3")}
    loaded = Settings.from_env(env)
    storage = Storage.from_env(env)
    assert (loaded.calllog_path, loaded.journal_path) == (storage.calllog, storage.journal)
    assert storage.calllog == state / "log.sqlite3"
