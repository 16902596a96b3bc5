"""What each change of the dial path bought (issue 21): one fixed-rate step per variant, in one run.

    .venv/bin/python -m bench --variants [--variant-rate 40] [--window 60]

The ramp of `python -m bench` gives each flow's ceiling; it cannot say which change moved it. This
run holds the load still and changes one thing at a time, each on a fresh controller against the
same Asterisk:

    A          the pure dialplan flow (no controller): the floor every B variant is compared with
    crypt      the controller, ARI password checked as a SHA-512 crypt hash (the setting before
               this round): Asterisk runs a crypt check on every ARI request
    plain      the same with the shipped setting (password_format = plain, ivr.site.render)
    dialplan   plain, and HOTLINE_DIAL_PATH=dialplan: Asterisk dials the ring chain itself once the
               controller has decided (skipped when this checkout has no such setting)

For each: calls placed / failed, Asterisk's and the controller's CPU ms per call, the controller's
ARI requests per call (its own counter), p99 INVITE→200 and DTMF→outbound INVITE. Like every
benchmark here the run is judged quiet or not (bench.quiet): figures from a shared box are marked
NOT valid and `python -m bench` exits 3.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import quiet
from bench.load import Endpoints, run_step
from bench.run import _ari_requests, _finish_controller, _print_step, begin
from ivr.site.render import ARI_USER
from lab import manager
from lab import processes as lab

# (label, what it changes, the controller's extra environment, ARI password format)
VARIANTS: tuple[tuple[str, str, dict[str, str], str], ...] = (
    ("crypt", "ARI path, ARI password as a SHA-512 crypt hash (before)", {"HOTLINE_DIAL_PATH": "ari"}, "crypt"),
    ("plain", "ARI path, ARI password plain (shipped)", {"HOTLINE_DIAL_PATH": "ari"}, "plain"),
    (
        "dialplan",
        "plain + Asterisk dials the ring chain (HOTLINE_DIAL_PATH=dialplan, shipped)",
        {"HOTLINE_DIAL_PATH": "dialplan"},
        "plain",
    ),
)


@dataclass
class VariantOptions:
    rate: float = 40.0
    window: float = 60.0
    out: Path = lab.REPO / "var" / "bench"
    manage_asterisk: bool = True
    only: tuple[str, ...] = field(default=())  # labels to run (empty: every variant this checkout has)


def sha512_crypt(password: str) -> str:
    """The hash the lab wrote before this round (openssl, 1000 rounds): Python's crypt module is gone in 3.13."""
    salt = f"rounds=1000${secrets.token_hex(8)}"
    done = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=password, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def dial_path_setting() -> bool:
    """Whether this checkout's controller knows HOTLINE_DIAL_PATH (the dialplan dial path)."""
    settings = (lab.REPO / "ivr" / "settings.py").read_text(encoding="utf-8")
    return "HOTLINE_DIAL_PATH" in settings


def set_ari_auth(password_format: str) -> None:
    """Rewrite the lab's ari_users.conf with `password_format` and make Asterisk reload it."""
    ast = manager.Asterisk()
    etc = ast.root / "etc/hotline"
    if password_format == "plain":
        gid = (etc / "ari_users.conf").stat().st_gid
        manager.write_ari_users(etc, ast.password_file, gid, by="python -m bench --variants")
    else:
        password = ast.password_file.read_text().strip()
        path = etc / "ari_users.conf"
        path.write_text(
            "; written by python -m bench --variants (crypt, for comparison) -- the lab rewrites it at start\n"
            f"[{ARI_USER}]\ntype = user\nread_only = no\npassword_format = crypt\n"
            f"password = {sha512_crypt(password)}\n"
        )
    ast.cli("module reload res_ari.so")
    # The reload is asynchronous to the CLI's answer: wait until the controller's password works.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            lab.Ari().get("/asterisk/info")
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"ARI did not accept the password after switching to {password_format}")


def run_variants(opts: VariantOptions) -> dict[str, Any]:
    report, workdir, ast_pid, ari = begin("variants", opts)
    calls = max(1, int(opts.rate * opts.window))
    try:
        if not opts.only or "A" in opts.only:
            step = run_step(
                f"A@{opts.rate:g}",
                opts.rate,
                calls,
                workdir / "A",
                Endpoints("127.0.0.3", sip_port=5220, media_port=7200),
                caller_prefix="1500",
                sample=quiet.sampler({"asterisk": ast_pid}),
            )
            _print_step(step)
            report["runs"]["A"] = {"what": "pure dialplan, no controller", "step": step.summary()}
        for i, (label, what, env, auth) in enumerate(VARIANTS):
            if opts.only and label not in opts.only:
                continue
            if env.get("HOTLINE_DIAL_PATH") == "dialplan" and not dial_path_setting():
                report["runs"][label] = {"what": what, "skipped": "this checkout has no HOTLINE_DIAL_PATH"}
                continue
            set_ari_auth(auth)
            report["runs"][label] = _one(label, what, i, env, opts, calls, workdir, ast_pid, ari)
    except Exception as exc:  # keep what was measured; say what broke
        report["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        try:
            set_ari_auth("plain")
        finally:
            if opts.manage_asterisk:
                lab.stop_asterisk()
            report["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
            quiet.judge(report, [run["step"] for run in report["runs"].values() if "step" in run])
            (workdir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
            (workdir / "report.md").write_text(markdown(report), encoding="utf-8")
    return report


def _one(
    label: str,
    what: str,
    i: int,
    env: dict[str, str],
    opts: VariantOptions,
    calls: int,
    workdir: Path,
    ast_pid: int,
    ari: lab.Ari,
) -> dict[str, Any]:
    ctl = lab.ControllerProcess(workdir / f"controller-{label}")
    t0 = time.time()
    pid = ctl.start(env)
    before = _ari_requests(ctl)
    step = run_step(
        f"{label}@{opts.rate:g}",
        opts.rate,
        calls,
        workdir / label,
        Endpoints("127.0.0.1", sip_port=5230, media_port=7300),
        caller_prefix=f"151{i}",
        sample=quiet.sampler({"asterisk": ast_pid, "controller": pid}),
    )
    after = _ari_requests(ctl)
    if before is not None and after is not None:
        step.ari_requests = after - before
    _print_step(step)
    out: dict[str, Any] = {"what": what, "step": step.summary()}
    _finish_controller(ctl, out, ari, t0)
    return out


def markdown(r: dict[str, Any]) -> str:
    lines = quiet.preamble("Dial-path variants", r) + [
        "| variant | what | calls/s | placed | failed | Asterisk CPU ms/call | controller CPU ms/call | "
        "ARI requests/call | p99 INVITE→200 ms | p99 DTMF→INVITE ms | rows | left ch/br |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, run in r["runs"].items():
        if "skipped" in run:
            lines.append(f"| {label} | {run['what']} | skipped: {run['skipped']} |||||||||| ")
            continue
        s = run["step"]
        cpu = s.get("cpu_ms_per_call") or {}
        lines.append(
            f"| {label} | {run['what']} | {s['rate']:g} | {s['placed']} | {s['failed_total']} | "
            f"{cpu.get('asterisk', '—')} | {cpu.get('controller', '—')} | "
            f"{s.get('ari_requests_per_call') if s.get('ari_requests_per_call') is not None else '—'} | "
            f"{s['invite_to_200'].get('p99', '—')} | {s['dtmf_to_invite'].get('p99', '—')} | "
            f"{run.get('calllog_rows', '—')} | {run.get('leftover_channels', '—')}/{run.get('leftover_bridges', '—')} |"
        )
    if r.get("error"):
        lines += ["", f"Error: {r['error']}"]
    return "\n".join(lines) + "\n"
