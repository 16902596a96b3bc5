"""Operator accounts of the console: a name, a role, the seat an operator sits at, a bcrypt hash.

Kept in one JSON file in the state directory (HOTLINE_STATE/console-accounts.json), 0600 like the
other secrets (ivr.site.secrets): it holds password hashes. Written whole to a temporary file and
renamed, so a crash never leaves half a file. Passwords are hashed with bcrypt (a kept library; its
cost makes a stolen file slow to guess); bcrypt reads at most 72 bytes, so longer ones are refused
rather than silently cut.

Roles: "operator" (their own seat and the call at it) and "supervisor" (every seat, the wallboard). A
supervisor's seat, if given, is the phone rung to listen in on a call (ivr.operators.supervise).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import bcrypt

from ivr.errors import HotlineError

Role = Literal["operator", "supervisor"]
ROLES: tuple[Role, ...] = ("operator", "supervisor")
ACCOUNTS_FILE = "console-accounts.json"
FIRST_SUPERVISOR = "supervisor"
FIRST_PASSWORD_FILE = "console-supervisor.password"
MIN_PASSWORD = 10
MAX_PASSWORD_BYTES = 72  # bcrypt's limit
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
BCRYPT_ROUNDS = 12


class AccountError(HotlineError):
    """A refused account change or a login that failed; nothing was changed."""


@dataclass(frozen=True)
class Account:
    name: str
    role: Role
    seat: str  # the operator's seat (routes.yaml operators.seats id); a supervisor's: the phone that listens in
    password_hash: str


def hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    check_password(password)
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise AccountError(f"a password is at most {MAX_PASSWORD_BYTES} bytes (bcrypt reads no more)")


def generated_password() -> str:
    return secrets.token_urlsafe(15)


# A hash to check against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(b"no such account", bcrypt.gensalt(4)).decode()


class AccountStore:
    def __init__(self, path: Path, rounds: int = BCRYPT_ROUNDS) -> None:
        self.path = path
        self.rounds = rounds

    @classmethod
    def in_state(cls, state: Path, env: Mapping[str, str] | None = None) -> AccountStore:
        """HOTLINE_CONSOLE_ACCOUNTS if set (a test's own accounts), else the state directory's file."""
        named = (env if env is not None else os.environ).get("HOTLINE_CONSOLE_ACCOUNTS")
        return cls(Path(named) if named else state / ACCOUNTS_FILE)

    # -- reads ------------------------------------------------------------------------------------
    def load(self) -> dict[str, Account]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise AccountError(f"{self.path}: cannot read: {exc.strerror}") from None
        try:
            data = json.loads(raw)
            return {a["name"]: Account(a["name"], a["role"], a.get("seat", ""), a["password_hash"]) for a in data}
        except (ValueError, KeyError, TypeError) as exc:
            raise AccountError(f"{self.path}: not an accounts file ({exc})") from None

    def get(self, name: str) -> Account | None:
        return self.load().get(name)

    def verify(self, name: str, password: str) -> Account | None:
        """The account if `password` is its password; None otherwise (unknown name or wrong password)."""
        account = self.get(name)
        hashed = account.password_hash if account is not None else _DUMMY_HASH
        try:
            ok = bcrypt.checkpw(password.encode()[:MAX_PASSWORD_BYTES], hashed.encode())
        except ValueError:
            ok = False
        return account if ok and account is not None else None

    # -- changes ----------------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str, seat: str = "") -> Account:
        if not NAME.match(name):
            raise AccountError(f"account name {name[:40]!r}: letters, digits, '_', '.', '-' (at most 40)")
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
        if role == "operator" and not seat:
            raise AccountError("an operator account needs its seat (--seat, a seat id of routes.yaml)")
        accounts = self.load()
        if name in accounts:
            raise AccountError(f"account {name} exists already (use passwd to change its password)")
        account = Account(name, role, seat, self._hash(password))
        accounts[name] = account
        self._save(accounts)
        return account

    def passwd(self, name: str, password: str) -> Account:
        accounts = self.load()
        if name not in accounts:
            raise AccountError(f"no account {name[:40]}")
        old = accounts[name]
        accounts[name] = Account(old.name, old.role, old.seat, self._hash(password))
        self._save(accounts)
        if name == FIRST_SUPERVISOR:  # the generated password is no longer the password: do not keep it
            (self.path.parent / FIRST_PASSWORD_FILE).unlink(missing_ok=True)
        return accounts[name]

    def set_seat(self, name: str, seat: str) -> Account:
        """An operator's seat, or a supervisor's phone seat ("" for none); a session of it ends (it changed)."""
        accounts = self.load()
        if name not in accounts:
            raise AccountError(f"no account {name[:40]}")
        old = accounts[name]
        if old.role == "operator" and not seat:
            raise AccountError("an operator account needs its seat (a seat id of routes.yaml)")
        accounts[name] = Account(old.name, old.role, seat, old.password_hash)
        self._save(accounts)
        return accounts[name]

    def remove(self, name: str) -> None:
        accounts = self.load()
        if name not in accounts:
            raise AccountError(f"no account {name[:40]}")
        left = [a for a in accounts.values() if a.name != name]
        if accounts[name].role == "supervisor" and not any(a.role == "supervisor" for a in left):
            raise AccountError(f"{name} is the last supervisor: add another supervisor first")
        del accounts[name]
        self._save(accounts)

    def first_supervisor(self) -> tuple[str, str] | None:
        """On a store with no account: add the first supervisor with a generated password, kept 0600
        beside the accounts (its path and the password returned); None when accounts exist already."""
        if self.load():
            return None
        password = generated_password()
        self.add(FIRST_SUPERVISOR, "supervisor", password)
        keep = self.path.parent / FIRST_PASSWORD_FILE
        keep.unlink(missing_ok=True)
        fd = os.open(keep, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(password + "\n")
        return str(keep), password

    def _hash(self, password: str) -> str:
        try:
            return hash_password(password, self.rounds)
        except AccountError:
            raise
        except ValueError as exc:
            raise AccountError(str(exc)) from None

    def _save(self, accounts: dict[str, Account]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump([asdict(a) for a in sorted(accounts.values(), key=lambda a: a.name)], out, indent=1)
        os.replace(tmp, self.path)
