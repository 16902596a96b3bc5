"""`python -m bench`: the whole A/B benchmark in one command, under the lab lock.

    .venv/bin/python -m bench                       # the full run (A and B each rise until a step fails; <= 50 min)
    .venv/bin/python -m bench --window 15 --rates 5,10,20 --no-checks   # a short look
    .venv/bin/python -m bench --recording-cost --cost-rate 5 --window 60  # Asterisk CPU per call, recording off/on
    .venv/bin/python -m bench --variants --variant-rate 40 --window 60   # what each dial-path change bought

The report goes to var/bench/<time>/report.md (and report.json), and is printed at the end.
Run it on a quiet box: a run during which other processes used more than 10 % of a core in any
step is reported as NOT valid and exits 3 (bench.quiet).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.run import Options, run
from lab import processes as lab


def _rates(text: str) -> list[float]:
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"rates must be numbers separated by commas, got {text!r}") from None
    if not rates or any(r <= 0 or r > 500 for r in rates):
        raise argparse.ArgumentTypeError("rates must be between 0 and 500 calls/s")
    return sorted(rates)


def _in_lab(run: Callable[[Any], dict[str, Any]], opts: Any, lock_held: bool) -> dict[str, Any]:
    """Run a benchmark holding the lab lock (taken here unless the caller already holds it)."""
    if lock_held:
        return run(opts)
    with lab.lab_lock():
        return run(opts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--window", type=float, default=60.0, help="seconds of load per step (default 60)")
    p.add_argument("--rates", type=_rates, help="calls/s steps for both flows, e.g. 10,20,30")
    p.add_argument("--rates-a", type=_rates, help="steps for A (dialplan)")
    p.add_argument("--rates-b", type=_rates, help="steps for B (controller)")
    p.add_argument("--rates-sipp", type=_rates, help="calibration steps (SIPp against SIPp)")
    p.add_argument("--no-calibrate", action="store_true", help="skip SIPp-against-SIPp calibration")
    p.add_argument("--no-checks", action="store_true", help="skip B's 80 %% / 150 %% / endurance checks")
    p.add_argument("--overload-seconds", type=float, default=120.0)
    p.add_argument("--endurance-calls", type=int, default=10_000, help="calls at 80 %% after the ramp, for RSS")
    p.add_argument("--max-minutes", type=float, default=50.0, help="hard bound of the whole run (default 50)")
    p.add_argument("--out", type=Path, default=lab.REPO / "var" / "bench")
    p.add_argument("--profile", action="store_true", help="py-spy the controller during B's ramp")
    p.add_argument(
        "--admission-share",
        type=float,
        default=0.0,
        help="run the 150 %% check with the fixed-rate override, HOTLINE_MAX_CALL_RATE at this share of B's max "
        "(e.g. 0.8); default: with default settings (adaptive admission)",
    )
    p.add_argument(
        "--lock-held",
        action="store_true",
        help="the caller already holds /tmp/hotline-lab.lock (e.g. flock ... python -m bench)",
    )
    p.add_argument(
        "--recording-cost",
        action="store_true",
        help="instead of the A/B run: the controller flow with recording off, then on (bench.recording_cost)",
    )
    p.add_argument(
        "--variants",
        action="store_true",
        help="instead of the A/B run: one fixed-rate step per dial-path variant (bench.variants)",
    )
    p.add_argument("--variant-rate", type=float, default=40.0, help="calls/s of every variant's step (default 40)")
    p.add_argument("--only", help="variants to run, comma-separated (A,crypt,plain,dialplan)")
    p.add_argument("--cost-rate", type=float, default=5.0, help="calls/s of both recording-cost runs (default 5)")
    p.add_argument(
        "--cost-talk-ms", type=int, default=15000, help="key press -> citizen's BYE in the recording-cost runs"
    )
    args = p.parse_args(argv)
    if not 5 <= args.window <= 600:
        p.error("--window must be 5..600 seconds")
    if args.admission_share and not 0.1 <= args.admission_share <= 1.0:
        p.error("--admission-share must be 0.1..1.0 (or 0: default settings)")
    if not 1 <= args.max_minutes <= 60:
        p.error("--max-minutes must be 1..60")
    if args.recording_cost:
        return _recording_cost(args, p)
    if args.variants:
        return _variants(args, p)
    opts = Options(
        window=args.window,
        calibrate=not args.no_calibrate,
        checks=not args.no_checks,
        overload_seconds=args.overload_seconds,
        endurance_calls=args.endurance_calls,
        max_minutes=args.max_minutes,
        out=args.out,
        profile=args.profile,
        admission_share=args.admission_share,
    )
    if args.rates:
        opts.rates_a = opts.rates_b = args.rates
    opts.rates_a = args.rates_a or opts.rates_a
    opts.rates_b = args.rates_b or opts.rates_b
    opts.rates_sipp = args.rates_sipp or opts.rates_sipp
    report = _in_lab(run, opts, args.lock_held)
    md = Path(report["workdir"]) / "report.md"
    print(md.read_text(encoding="utf-8") if md.exists() else f"no report: see {report['workdir']}/report.json")
    return 0 if report.get("valid") else 3


def _recording_cost(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    from bench.recording_cost import CostOptions, run_recording_cost

    if not 0.2 <= args.cost_rate <= 100:
        p.error("--cost-rate must be 0.2..100 calls/s")
    if not 8000 <= args.cost_talk_ms <= 120_000:
        p.error("--cost-talk-ms must be 8000..120000 (the notice, the ringing and some talk)")
    opts = CostOptions(rate=args.cost_rate, window=args.window, talk_ms=args.cost_talk_ms, out=args.out)
    report = _in_lab(run_recording_cost, opts, args.lock_held)
    print((Path(report["workdir"]) / "report.md").read_text(encoding="utf-8"))
    return 0 if report.get("valid") else 3


def _variants(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    from bench.variants import VARIANTS, VariantOptions, run_variants

    if not 1 <= args.variant_rate <= 300:
        p.error("--variant-rate must be 1..300 calls/s")
    only = tuple(x.strip() for x in (args.only or "").split(",") if x.strip())
    known = {"A", *(label for label, *_ in VARIANTS)}
    if unknown := [x for x in only if x not in known]:
        p.error(f"--only: unknown variant(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    opts = VariantOptions(rate=args.variant_rate, window=args.window, out=args.out, only=only)
    report = _in_lab(run_variants, opts, args.lock_held)
    print((Path(report["workdir"]) / "report.md").read_text(encoding="utf-8"))
    return 0 if report.get("valid") else 3


if __name__ == "__main__":
    sys.exit(main())
