"""`kustomer-assets` console commands; each one delegates to the module that owns the work.

Only what is about the console stays here: arguments, what goes to stdout and stderr, and the
exit codes (for `check`: the key check itself is `kustomer_assets.checks.key_check`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

EXIT_OK, EXIT_MISSING_REQUIRED, EXIT_CONFIG = 0, 1, 2
"""`kustomer-assets check`: every required role present; one missing; settings, key or
Kustomer itself unusable."""


def _emulator(args: argparse.Namespace) -> None:
    from kustomer_assets.emulator import EmulatorConfig, serve_forever

    config = EmulatorConfig(seed=args.seed, days=args.days, fault_rate=args.fault_rate)
    print(f"Kustomer emulator on http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    serve_forever(config, host=args.host, port=args.port)


def _demo(args: argparse.Namespace) -> None:
    from kustomer_assets.demo import run_demo

    run_demo(days=args.days, root=args.root, seed=args.seed)


def _ui(args: argparse.Namespace) -> None:
    from kustomer_assets.demo import run_ui

    run_ui(root=args.root, port=args.port)


def run_check(
    environ: Mapping[str, str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`kustomer-assets check`: the table on stdout, one sentence on stderr when it cannot run.

    Exit codes: 0 the key has every required role, 1 a required role is missing, 2 the settings
    or the key itself are unusable (or Kustomer could not be reached at all).
    """
    from kustomer_assets.checks.key_check import check_key
    from kustomer_assets.kustomer import (
        KustomerAuthError,
        KustomerClient,
        KustomerConfigError,
        KustomerError,
        KustomerSettings,
    )

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        settings = KustomerSettings.from_env(environ)
        with KustomerClient(settings) as client:
            report = check_key(client)
    except (KustomerConfigError, KustomerAuthError) as exc:
        print(f"kustomer-assets check: {exc}", file=err)
        return EXIT_CONFIG
    except KustomerError as exc:
        print(f"kustomer-assets check: could not reach Kustomer: {exc}", file=err)
        return EXIT_CONFIG
    print(report.format_table(), file=out)
    return EXIT_OK if report.ok else EXIT_MISSING_REQUIRED


def _check(args: argparse.Namespace) -> None:
    raise SystemExit(run_check())


def _resume(args: argparse.Namespace) -> None:
    import dagster as dg

    from kustomer_assets.run_recovery import resume_from_failure

    with dg.DagsterInstance.get() as instance:
        try:
            result = resume_from_failure(instance, args.run_id)
        except ValueError as error:
            raise SystemExit(f"kustomer-assets resume: {error}") from None
        print(f"Run {result.run_id}: {'succeeded' if result.success else 'failed'}")
        raise SystemExit(0 if result.success else 1)


def _webhooks(args: argparse.Namespace) -> None:
    from kustomer_assets.webhooks.receiver import run_command as serve_webhooks

    raise SystemExit(serve_webhooks(host=args.host, port=args.port, store_folder=args.store))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kustomer-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    emulator = commands.add_parser("emulator", help="serve the local Kustomer API emulator")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8755)
    emulator.add_argument("--seed", type=int, default=7)
    emulator.add_argument("--days", type=int, default=30)
    emulator.add_argument("--fault-rate", type=float, default=0.0)
    emulator.set_defaults(run=_emulator)

    demo = commands.add_parser("demo", help="backfill the last N days from the emulator")
    demo.add_argument("--days", type=int, default=30)
    demo.add_argument("--root", default=".demo")
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(run=_demo)

    ui = commands.add_parser(
        "ui",
        help="Dagster UI over the demo's instance and tables, with the emulator serving the "
        "demo's own org (run the demo first)",
        description="Reads <root>/emulator.json, which the demo wrote, so the emulator serves "
        "the same org (seed, days and `now`) the demo loaded; uses the demo's DAGSTER_HOME "
        "and Delta folder, and partitions starting at the demo's first day.",
    )
    ui.add_argument("--root", default=".demo", help="the demo folder (default .demo)")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(run=_ui)

    check = commands.add_parser(
        "check",
        help="which Kustomer roles the API key carries (exit 0 ok, 1 required role missing, "
        "2 settings or key unusable)",
        description="Reads KUSTOMER_SUBDOMAIN or KUSTOMER_BASE_URL and KUSTOMER_API_KEY from "
        "the environment and probes each role with one small request.",
    )
    check.set_defaults(run=_check)

    resume = commands.add_parser(
        "resume",
        help="re-execute a failed or killed run from failure (runs started by the CLI)",
        description="Fails the run first if it is still STARTED but its worker on this host is "
        "gone, then re-executes it from failure in this process: windows the run committed "
        "are kept. Reads DAGSTER_HOME and the same KUSTOMER_* variables as the run.",
    )
    resume.add_argument("run_id")
    resume.set_defaults(run=_resume)

    webhooks = commands.add_parser(
        "webhooks",
        help="receive Kustomer outbound webhooks into the event log the "
        "kustomer_webhook_events sensor reads (a second process beside the webserver)",
        description="Reads KUSTOMER_WEBHOOK_SECRET (required; the webhook's custom header "
        "must carry it), KUSTOMER_WEBHOOK_HEADER and KUSTOMER_WEBHOOK_STORE or "
        "KUSTOMER_DELTA_ROOT. Plain HTTP: put a TLS reverse proxy in front of it.",
    )
    webhooks.add_argument("--host", default="127.0.0.1")
    webhooks.add_argument("--port", type=int, default=8756)
    webhooks.add_argument("--store", default=None, help="event log folder (overrides the env)")
    webhooks.set_defaults(run=_webhooks)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
