"""Console accounts: bcrypt hashes in a 0600 file, roles, and refusals that change nothing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ivr.console.accounts import FIRST_PASSWORD_FILE, AccountError, AccountStore


@pytest.fixture
def store(tmp_path: Path) -> AccountStore:
    return AccountStore(tmp_path / "state" / "console-accounts.json", rounds=4)  # cheap rounds: tests only


def test_a_password_is_kept_as_a_bcrypt_hash_in_a_0600_file_and_checks(store: AccountStore) -> None:
    store.add("li", "operator", "correct horse battery", seat="seat-1")
    text = store.path.read_text()
    assert "correct horse" not in text and '"$2b$04$' in text
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    account = store.verify("li", "correct horse battery")
    assert account is not None and (account.role, account.seat) == ("operator", "seat-1")
    assert store.verify("li", "correct horse batterY") is None
    assert store.verify("nobody", "correct horse battery") is None


@pytest.mark.parametrize(
    ("name", "role", "password", "seat", "why"),
    [
        ("li", "operator", "short", "seat-1", "at least 10 characters"),
        ("li", "operator", "x" * 73, "seat-1", "at most 72 bytes"),
        ("li", "admin", "long enough pw", "", "role must be one of operator, supervisor"),
        ("li", "operator", "long enough pw", "", "needs its seat"),
        ("../etc", "operator", "long enough pw", "seat-1", "letters, digits"),
    ],
)
def test_bad_accounts_are_refused_and_nothing_is_written(
    store: AccountStore, name: str, role: str, password: str, seat: str, why: str
) -> None:
    with pytest.raises(AccountError, match=why):
        store.add(name, role, password, seat)
    assert not store.path.exists()


def test_passwd_and_remove_and_the_last_supervisor_stays(store: AccountStore) -> None:
    store.add("boss", "supervisor", "first password")
    store.add("li", "operator", "li's password", seat="seat-1")
    with pytest.raises(AccountError, match="exists already"):
        store.add("li", "operator", "another password", seat="seat-2")
    store.passwd("li", "a new password")
    assert store.verify("li", "li's password") is None and store.verify("li", "a new password") is not None
    with pytest.raises(AccountError, match="last supervisor"):
        store.remove("boss")
    store.remove("li")
    with pytest.raises(AccountError, match="no account li"):
        store.passwd("li", "whatever password")
    assert list(store.load()) == ["boss"]


def test_the_first_supervisor_is_made_once_with_a_generated_password_kept_0600(store: AccountStore) -> None:
    made = store.first_supervisor()
    assert made is not None
    path, password = made
    assert Path(path).name == FIRST_PASSWORD_FILE and Path(path).read_text().strip() == password
    assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
    assert store.verify("supervisor", password) is not None
    assert store.first_supervisor() is None  # accounts exist: nothing changes
    assert store.verify("supervisor", password) is not None
    store.passwd("supervisor", "my own password")
    assert not Path(path).exists()  # the generated one is not kept once changed


def test_a_supervisors_phone_seat_is_set_and_cleared_and_an_operator_keeps_one(store: AccountStore) -> None:
    store.add("boss", "supervisor", "first password")
    store.add("li", "operator", "li's password", seat="seat-1")
    assert store.set_seat("boss", "seat-9").seat == "seat-9"
    assert store.get("boss") == store.set_seat("boss", "seat-9")
    assert store.set_seat("boss", "").seat == ""
    before = store.path.read_bytes()
    with pytest.raises(AccountError, match="an operator account needs its seat"):
        store.set_seat("li", "")
    with pytest.raises(AccountError, match="no account ghost"):
        store.set_seat("ghost", "seat-1")
    assert store.path.read_bytes() == before
