"""The benchmark suite of issue 9: every piece in one run, one table, `RESULTS.md`.

Runs, one after the other (each in its own process, each writing its JSON to
`benchmarks/results/`):

1. `requests_per_record.py`: requests of a 30-day extraction, ours against the taps' pattern;
2. `full_sync.py`: a full sync of every entity from one emulator with the issue's real 60 s
   budget windows, ours (`dagster asset materialize`) and the Singer `tap-kustomer` 1.1.0 on the
   same data in the same run (`--scale`: 1 is the issue's 10k-conversation org);
3. `mapping_throughput.py`: map + write throughput from recorded pages, no HTTP;
4. `memory_growth.py`: peak RSS as the history in one window grows 1x, 4x, 16x;
5. `feedback_vs_duckdb.py`: the `feedback` full build and a 1% incremental refresh against the
   same join in DuckDB over the same Delta files.

then collects their JSON into `benchmarks/results/bench.json`, prints one table of the issue's
acceptance figures (pass / FAIL each), and writes `benchmarks/RESULTS.md`: the machine (CPU,
cores, RAM, Python and package versions), the exact commands, the acceptance table, and each
piece's figures.

Sizes: the defaults finish in about 10-15 minutes on 2 cores (`make bench`); `--full` runs the
issue's sizes (`make bench-full`: full sync at scale 1, map + write of 1M conversations and
5M messages, feedback on 1M conversations / 5M messages / 200k customers), about 45 minutes.
Every figure in RESULTS.md says the size it was measured at.

    .venv/bin/python benchmarks/run_all.py [--full] [--scale 0.2] [--only a,b] [--skip a,b]
    .venv/bin/python benchmarks/run_all.py --report-only     # rebuild RESULTS.md from JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_DIR = HERE / "results"
REPORT = HERE / "RESULTS.md"
BENCH_JSON = RESULTS_DIR / "bench.json"

PACKAGES = ("kustomer-assets", "dagster", "polars", "deltalake", "pyarrow", "duckdb", "httpx")

# The issue's acceptance targets.
WALL_VS_SINGER = 0.6
REQUESTS_VS_SINGER = 0.55
SEARCH_CEILING_SHARE = 0.9
MAP_WRITE_PER_MINUTE = 1_000_000
RSS_GROWTH_PCT = 10.0
FEEDBACK_VS_DUCKDB = 1.0
INCREMENTAL_SHARE = 0.10

ISSUE_SIZES = {
    "full_sync": "scale 1 (10k conversations, 95% on one spike day)",
    "mapping_throughput": "1M conversations / 5M messages",
    "feedback_vs_duckdb": "1M conversations / 5M messages / 200k customers",
}


@dataclass
class Piece:
    name: str
    command: list[str]
    output: Path
    exit_code: int | None = None
    seconds: float | None = None
    recorded: list[str] | None = None
    """The command as the run that made `output` recorded it (a piece not run this time)."""


def pieces(args: argparse.Namespace) -> list[Piece]:
    python = sys.executable
    bench = HERE.relative_to(REPO)
    full = args.full
    scale = args.scale if args.scale is not None else (1.0 if full else 0.2)
    conversations, messages = (1_000_000, 5_000_000) if full else (200_000, 500_000)
    memory_base = 125_000 if full else 62_500
    out = {name: RESULTS_DIR / f"{name}.json" for name in ALL_PIECES}
    listed = [
        Piece(
            "requests_per_record",
            [python, f"{bench}/requests_per_record.py", "--days", "30"],
            out["requests_per_record"],
        ),
        Piece(
            "full_sync",
            [python, f"{bench}/full_sync.py", "--scale", f"{scale:g}"],
            out["full_sync"],
        ),
        Piece(
            "mapping_throughput",
            [
                python,
                f"{bench}/mapping_throughput.py",
                *("--conversations", str(conversations), "--messages", str(messages)),
                *("--implementations", "new", "--steps", "map+write"),
            ],
            out["mapping_throughput"],
        ),
        Piece(
            "memory_growth",
            [python, f"{bench}/memory_growth.py", "--base", str(memory_base)],
            out["memory_growth"],
        ),
        Piece(
            "feedback_vs_duckdb",
            [
                python,
                f"{bench}/feedback_vs_duckdb.py",
                # At the issue's size DuckDB spills past 40% of RAM rather than take it all
                # beside our own build's tables (it is a baseline, not the system measured).
                *(["--full", "--duckdb-memory-limit", "40%"] if full else []),
            ],
            out["feedback_vs_duckdb"],
        ),
    ]
    for piece in listed:
        piece.command += ["--output", str(piece.output.relative_to(REPO))]
    return listed


ALL_PIECES = (
    "requests_per_record",
    "full_sync",
    "mapping_throughput",
    "memory_growth",
    "feedback_vs_duckdb",
)


# ----------------------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib: float | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": ram_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
        "git": git_state(),
    }


def git_state() -> dict[str, Any]:
    """HEAD and whether the tree has changes (read-only git commands)."""

    def git(*argv: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *argv], cwd=REPO, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    status = git("status", "--porcelain")
    return {
        "head": git("rev-parse", "--short", "HEAD"),
        "changed_files": None if status is None else len(status.splitlines()),
    }


# ----------------------------------------------------------------------------- figures


def load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def default_budget() -> dict[str, int]:
    """The budget a new user's client runs on (the settings' defaults, read, not copied)."""
    from kustomer_assets.kustomer.settings import KustomerSettings

    defaults = KustomerSettings()
    return {
        "search": defaults.search_requests_per_minute,
        "org": defaults.org_requests_per_minute,
        "search_page": defaults.search_page_size,
        "list_page": defaults.list_page_size,
    }


def entity_rows(sync: dict[str, Any]) -> list[dict[str, Any]]:
    """Per entity of ours: kind, records, step seconds, records/min and the budget's ceiling."""
    from kustomer_assets.entities import ENTITIES, ByIdSource, ListSource, MetadataSource
    from kustomer_assets.kustomer.settings import KustomerSettings

    defaults = KustomerSettings()
    search_ceiling = defaults.search_requests_per_minute * defaults.search_page_size
    ours = sync["ours"]
    stats = ours.get("emulator_stats", {})
    steps = ours.get("step_seconds", {})
    rows = []
    for spec in ENTITIES:
        source = spec.source
        if spec.is_searched:
            kind, requests = "search", stats.get(f"search.{spec.kustomer_type}", 0)
            ceiling = search_ceiling
        elif isinstance(source, ByIdSource):
            kind = "by id"
            requests = stats.get(f"requests.get_{spec.kustomer_type}", 0)
            ceiling = defaults.org_requests_per_minute
        elif isinstance(source, MetadataSource):
            kind, requests = "metadata", stats.get("requests.metadata", 0)
            ceiling = None
        else:
            kind = "list"
            path = source.path if isinstance(source, ListSource) else ""
            route = "list_" + str(path).removeprefix("/v1/").replace("/", "_")
            requests = stats.get(f"requests.{route}", 0)
            ceiling = defaults.org_requests_per_minute * defaults.list_page_size
        # Referenced customers are fetched by id, in the customers' step.
        by_id = stats.get("requests.get_customer", 0) if spec.name == "customers" else 0
        records = ours.get("records", {}).get(spec.name, 0)
        seconds = steps.get(spec.name)
        per_minute = records / seconds * 60 if seconds else None
        complete = ours.get("complete", {}).get(spec.name, {})
        rows.append(
            {
                "entity": spec.name,
                "kind": kind,
                "records": records,
                "step_seconds": seconds,
                "records_per_minute": None if per_minute is None else round(per_minute),
                "ceiling_per_minute": ceiling,
                "share_of_ceiling": (
                    round(per_minute / ceiling, 3) if per_minute is not None and ceiling else None
                ),
                "requests": requests,
                "by_id_requests": by_id,
                "requests_per_record": round((requests + by_id) / records, 4) if records else None,
                "complete": complete.get("ratio"),
                "missing": complete.get("missing"),
                "duplicates": ours.get("duplicates", {}).get(spec.name, 0),
            }
        )
    return rows


def per_kind(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = kinds.setdefault(row["kind"], {"records": 0, "requests": 0})
        entry["records"] += row["records"]
        entry["requests"] += row["requests"] + row["by_id_requests"]
    for entry in kinds.values():
        entry["requests_per_record"] = (
            round(entry["requests"] / entry["records"], 4) if entry["records"] else None
        )
    return kinds


def singer_per_kind(tap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    import singer_tap

    requests = tap.get("requests", {})
    searched = sum(v for s, v in tap.get("records", {}).items() if s in singer_tap.SEARCHED_STREAMS)
    listed = sum(
        v for s, v in tap.get("records", {}).items() if s not in singer_tap.SEARCHED_STREAMS
    )
    out = {}
    for kind, records, count in (
        ("search", searched, requests.get("search", 0)),
        ("list", listed, requests.get("list", 0)),
        ("other (token checks, unserved)", 0, requests.get("other", 0)),
    ):
        out[kind] = {
            "records": records,
            "requests": count,
            "requests_per_record": round(count / records, 4) if records else None,
        }
    return out


@dataclass
class Check:
    name: str
    target: str
    figure: str
    passed: bool | None
    """None: not measurable here (the figure says why)."""
    measured_at: str = ""


def acceptance(results: dict[str, Any], sizes: dict[str, str]) -> list[Check]:
    checks: list[Check] = []
    sync = results.get("full_sync")
    rows = entity_rows(sync) if sync else []
    if sync and isinstance(sync.get("singer"), dict) and "wall_seconds" in sync["singer"]:
        ours, tap, ratios = sync["ours"], sync["singer"], sync["ratios_ours_over_singer"]
        at = sizes["full_sync"]
        checks.append(wall_check(sync, at))
        like = ratios["like_for_like_requests"]
        checks.append(
            Check(
                "full sync requests vs Singer (entities both land)",
                f"<= {REQUESTS_VS_SINGER}x",
                f"{ratios['requests_like_for_like']}x ({like['ours']} / {like['singer']}); "
                f"all ours incl. entities the tap lacks: {ratios['requests']}x "
                f"({ours['requests']['total']} / {tap['requests']['total']})",
                ratios["requests_like_for_like"] is not None
                and ratios["requests_like_for_like"] <= REQUESTS_VS_SINGER,
                at,
            )
        )
    elif sync:
        checks.append(
            Check("full sync vs Singer", "ran", f"Singer not run: {sync.get('singer')}", None)
        )
    if sync:
        ours = sync["ours"]
        at = sizes["full_sync"]
        incomplete = [r["entity"] for r in rows if r["complete"] != 1.0]
        checks.append(
            Check(
                "every entity complete",
                "100% of expected ids, all 13",
                "all complete" if not incomplete else "incomplete: " + ", ".join(incomplete),
                not incomplete and bool(ours.get("finished")),
                at,
            )
        )
        checks.append(ceiling_check(ours, rows, at))
        checks.append(
            Check(
                "avoidable 429s (ours)",
                "0",
                str(ours["requests"]["status_429"]),
                ours["requests"]["status_429"] == 0,
                at,
            )
        )
    mapping = results.get("mapping_throughput")
    if mapping:
        at = " / ".join(f"{v:,} {k}" for k, v in mapping["counts"].items())
        for run in mapping["runs"]:
            if run["implementation"] != "new" or run["step"] != "map+write":
                continue
            checks.append(
                Check(
                    f"map+write {run['entity']}",
                    f">= {MAP_WRITE_PER_MINUTE:,} records/min",
                    f"{run['records_per_minute']:,} records/min "
                    f"({run['records_per_cpu_minute']:,} per CPU-min)",
                    run["records_per_minute"] >= MAP_WRITE_PER_MINUTE,
                    at,
                )
            )
    memory = results.get("memory_growth")
    if memory:
        runs = memory["runs"]
        checks.append(
            Check(
                f"peak RSS growth {runs[0]['factor']}x -> {runs[-1]['factor']}x",
                f"<= {RSS_GROWTH_PCT:g}%",
                f"{memory['growth_pct_first_to_last']:+.1f}% "
                f"({runs[0]['peak_rss_mb']:.0f} -> {runs[-1]['peak_rss_mb']:.0f} MB), "
                f"slope {memory['slope_mb_per_million_records']:.0f} MB per 1M records",
                memory["growth_pct_first_to_last"] <= RSS_GROWTH_PCT,
                f"{runs[0]['records']:,} -> {runs[-1]['records']:,} {memory['entity']}, one window",
            )
        )
    feedback = results.get("feedback_vs_duckdb")
    if feedback:
        full, inc = feedback["full"], feedback["incremental"]
        at = " / ".join(f"{v:,} {k}" for k, v in feedback["sizes"].items())
        checks.append(
            Check(
                "feedback full build vs DuckDB",
                f"<= {FEEDBACK_VS_DUCKDB:g}x",
                f"{full['ratio_ours_over_duckdb']:.2f}x ({full['ours_build_seconds']:.1f} s / "
                f"{full['duckdb_seconds']:.1f} s; same rows: {full['same_result']['equal']})",
                full["ratio_ours_over_duckdb"] <= FEEDBACK_VS_DUCKDB,
                at,
            )
        )
        checks.append(incremental_check(full, inc, feedback.get("incremental_recent"), at))
    return checks


def incremental_check(
    full: dict[str, Any], uniform: dict[str, Any], recent: dict[str, Any] | None, at: str
) -> Check:
    """Judged on the realistic refresh (the 1% most recently created conversations changed),
    the uniform one beside it; results from before the realistic case was measured are
    judged on the uniform one."""
    whole = full["ours_build_seconds"] + full["ours_write_seconds"]

    def figure(inc: dict[str, Any]) -> str:
        return (
            f"{inc['ratio_of_full_build_with_write']:.1%} ({inc['total_seconds']:.1f} s / "
            f"{whole:.1f} s, builds and writes; {inc['ratio_of_full_join']:.1%} of the join alone"
            + (
                f"; {inc['partitions_rewritten']} of {inc['partitions']} partitions rewritten)"
                if "partitions_rewritten" in inc
                else ")"
            )
        )

    judged = recent or uniform
    shown = figure(judged)
    if recent is not None:
        shown = (
            f"realistic, the 1% most recently created conversations changed: {shown}; uniform "
            f"1% over all history: {figure(uniform)}, not judged: uniform random changes over "
            "all history touch every creation week, so the copy-on-write rewrite rewrites "
            "every partition"
        )
    return Check(
        "feedback 1% incremental vs full build",
        f"<= {INCREMENTAL_SHARE:.0%}",
        shown,
        judged["ratio_of_full_build_with_write"] <= INCREMENTAL_SHARE,
        at,
    )


def wall_check(sync: dict[str, Any], at: str) -> Check:
    """Our wall against the tap's: judged like for like, ours syncing only the tap's entities
    (the issue's own comparison, "faster on the entities it completes"), with the run of every
    entity beside it; a run without the like-for-like one is judged on every entity."""
    ours, tap, ratios = sync["ours"], sync["singer"], sync["ratios_ours_over_singer"]
    every = (
        f"{ratios['wall']}x ({ours['wall_seconds']:.0f} s / {tap['wall_seconds']:.0f} s)"
        + lacking_note(ours, tap)
        + org_floor_note(ours)
    )
    like = sync.get("ours_like_for_like")
    judged = ratios.get("wall_like_for_like") if like else None
    if judged is None:
        return Check(
            "full sync wall vs Singer",
            f"<= {WALL_VS_SINGER}x",
            every,
            ratios["wall"] is not None and ratios["wall"] <= WALL_VS_SINGER,
            at,
        )
    complete = all(float(c["ratio"]) == 1.0 for c in like.get("complete", {}).values())
    return Check(
        "full sync wall vs Singer (the tap's entities)",
        f"<= {WALL_VS_SINGER}x",
        f"{judged}x ({like['wall_seconds']:.0f} s / {tap['wall_seconds']:.0f} s): ours run again "
        f"on the tap's {len(like.get('records', {}))} entities alone, "
        f"{'all complete' if complete else 'NOT all complete'}, exit {like.get('exit_code')}"
        f"{search_floor_note(sync, like, tap)}; every entity (13): {every}",
        judged <= WALL_VS_SINGER and complete and like.get("exit_code") == 0,
        at,
    )


def search_floor_note(sync: dict[str, Any], like: dict[str, Any], tap: dict[str, Any]) -> str:
    """Whether the wall target is reachable at all: a client needing more searches than the
    server allows in one window waits for the next one, so neither finishes in under a
    window; the tap's searches are near the fewest 500-record pages can do."""
    import singer_tap

    limit, window = sync["org"]["search_rate_limit"], sync["org"]["rate_window_seconds"]
    page = default_budget()["search_page"]
    pages = sum(-(-like["records"].get(e, 0) // page) for e in singer_tap.SEARCHED_STREAMS)
    ours, theirs = like["requests"]["search"], tap["requests"]["search"]
    if min(ours, theirs) <= limit:
        return ""
    return (
        f"; both need more than one search window (ours {ours} searches, the tap's {theirs}; "
        f"{pages} pages of {page} at the fewest; the server allows {limit} per {window:g} s), so "
        f"neither can finish in under {window:g} s, and {WALL_VS_SINGER}x the tap's wall is "
        f"{WALL_VS_SINGER * tap['wall_seconds']:.0f} s"
    )


def lacking_note(ours: dict[str, Any], tap: dict[str, Any]) -> str:
    """How much of our run went to entities the tap does not sync at all, our wall without
    them against the tap's, and whether the tap finished."""
    steps = ours.get("step_seconds", {})
    lacking = [e for e in ours.get("records", {}) if e not in tap.get("streams", [])]
    seconds = {e: steps[e] for e in lacking if e in steps}
    note = ""
    if seconds:
        top = max(seconds, key=lambda e: seconds[e])
        rest = ours["wall_seconds"] - sum(seconds.values())
        note = (
            f"; {sum(seconds.values()):.0f} s of ours went to the {len(lacking)} entities the "
            f"tap lacks ({top} {seconds[top]:.0f} s): without them {rest:.0f} s = "
            f"{rest / tap['wall_seconds']:.2f}x"
        )
    if not tap.get("finished"):
        note += f"; Singer did NOT finish ({tap.get('error')}), so its wall is a partial sync's"
    return note


def org_floor_note(ours: dict[str, Any]) -> str:
    """How close our wall is to the org budget's floor: every request (searches too) takes
    one of the default share's requests per minute, so no client can be faster with them."""
    share = default_budget()["org"]
    requests = ours["requests"].get("total", 0)
    if not requests:
        return ""
    floor = requests / share * 60
    inside = ours.get("run_seconds") or ours["wall_seconds"]
    return (
        f"; floor at the default org share ({share}/min) for our {requests} requests: "
        f"{floor:.0f} s, so the run ({inside:.0f} s) is at {floor / inside:.0%} of it"
    )


def searched_together(searched: list[dict[str, Any]]) -> str:
    """All searched steps as one: the search budget is one, whichever step spends it."""
    records = sum(r["records"] for r in searched)
    seconds = sum(r["step_seconds"] or 0 for r in searched)
    if not seconds:
        return ""
    ceiling = default_budget()["search"] * default_budget()["search_page"]
    rate = records / seconds * 60
    return (
        f"; all searched steps together {rate / ceiling:.0%} ({records:,} records in "
        f"{seconds:.0f} s)"
    )


def ceiling_check(ours: dict[str, Any], rows: list[dict[str, Any]], at: str) -> Check:
    """Searched entities' records/min against the search budget's ceiling, judged only where
    the budget bound: a run whose searches all fit in one window's budget never waited for
    it, so its records/min says nothing about the ceiling (it is latency, not budget)."""
    budget = default_budget()["search"]
    searched = [r for r in rows if r["kind"] == "search"]
    total = ours["requests"]["search"]
    bound = [r for r in searched if r["requests"] > budget or (r["step_seconds"] or 0) >= 60]
    figure = ", ".join(f"{r['entity']} {_pct(r['share_of_ceiling'])}" for r in searched)
    if total <= budget or not bound:
        return Check(
            "searched entities vs budget ceiling",
            f">= {SEARCH_CEILING_SHARE:.0%} each",
            f"{figure}; not budget-bound at this size (the whole run made {total} searches, "
            f"within one window's budget of {budget}): run at --scale 1 to measure",
            None,
            at,
        )
    low = [r for r in bound if (r["share_of_ceiling"] or 0) < SEARCH_CEILING_SHARE]
    names = ", ".join(r["entity"] for r in bound)
    return Check(
        "searched entities vs budget ceiling",
        f">= {SEARCH_CEILING_SHARE:.0%} each",
        f"{figure} (budget-bound: {names}){searched_together(searched)}",
        not low,
        at,
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("pass" if passed else "FAIL")


# ----------------------------------------------------------------------------- report


def print_table(checks: list[Check]) -> None:
    width = max(len(c.name) for c in checks) if checks else 10
    header = f"{'acceptance':<{width}}  {'target':<24}  {'result':<6}  figure"
    print("\n" + header + "\n" + "-" * min(len(header) + 60, 160))
    for check in checks:
        print(
            f"{check.name:<{width}}  {check.target:<24}  {_verdict(check.passed):<6}  "
            f"{check.figure}"
        )
        if check.measured_at:
            print(f"{'':<{width}}  {'':<24}  {'':<6}  at {check.measured_at}")


def markdown(bench: dict[str, Any]) -> str:
    results = bench["results"]
    m = bench["machine"]
    lines = [
        "# Benchmark results",
        "",
        "Generated by `benchmarks/run_all.py` (issue 9, item 5); do not edit by hand: rerun "
        "the suite (`make bench`, or `make bench-full` for the issue's sizes) or rebuild this "
        "file from the JSON with `run_all.py --report-only`.",
        "",
        f"Run: {bench['started_at']} to {bench['finished_at']} UTC "
        f"({bench['seconds_in_all'] / 60:.1f} min); mode: **{bench['mode']}**.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; RAM {m['ram_gib']} GiB; {m['os']}",
        f"- Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
        f"- git: {m['git']['head']} ({m['git']['changed_files']} files changed in the tree)",
        f"- load average (1 min) at the start {bench['load_start']:.2f}, at the end "
        f"{bench['load_end']:.2f}: the machine is shared, so wall times carry others' load.",
    ]
    sync = results.get("full_sync")
    if sync and isinstance(sync.get("singer"), dict) and sync["singer"].get("packages"):
        pinned = [p for p in sync["singer"]["packages"] if not p.startswith("-")]
        lines.append(f"- Singer venv (`benchmarks/.venv-singer`): {', '.join(pinned)}")
    lines += [
        "",
        "## Commands",
        "",
        "```",
        bench["command"],
        *[
            f"{shlex.join(p['command'])}    # {p['seconds']:.0f} s, exit {p['exit_code']}"
            if p["seconds"] is not None
            else f"{shlex.join(p['command'])}    # not run in this invocation"
            for p in bench["pieces"]
        ],
        "```",
        "",
        "## Acceptance",
        "",
        "| figure | target | result | measured | at |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in bench["acceptance"]:
        verdict = _verdict(c["passed"])
        verdict = f"**{verdict}**" if verdict == "FAIL" else verdict
        lines.append(
            f"| {c['name']} | {c['target']} | {verdict} | {c['figure']} | {c['measured_at']} |"
        )
    smaller = [k for k, v in bench["sizes"].items() if v != ISSUE_SIZES.get(k, v)]
    if smaller:
        lines += [
            "",
            "Measured below the issue's sizes (this is the quick suite): "
            + "; ".join(f"{k} at {bench['sizes'][k]} (issue: {ISSUE_SIZES[k]})" for k in smaller)
            + ". `make bench-full` measures at the issue's sizes.",
        ]
    if sync:
        lines += full_sync_section(sync)
    lines += mapping_section(results.get("mapping_throughput"))
    lines += memory_section(results.get("memory_growth"))
    lines += feedback_section(results.get("feedback_vs_duckdb"))
    lines += requests_section(results.get("requests_per_record"))
    return "\n".join(lines) + "\n"


def full_sync_section(sync: dict[str, Any]) -> list[str]:
    org, ours, tap = sync["org"], sync["ours"], sync.get("singer", {})
    budget = default_budget()
    counts = ", ".join(f"{v:,} {k}" for k, v in org["counts"].items() if v)
    lines = [
        "",
        "## Full sync: ours vs Singer `tap-kustomer` 1.1.0 (`full_sync.py`)",
        "",
        f"One emulator, {org['days']} days from {org['first_day']} at scale {org['scale']}: "
        f"{counts}; {org['spike_conversations']:,} conversations updated on the spike day. "
        f"Server limits {org['org_rate_limit']} requests and {org['search_rate_limit']} searches "
        f"per {org['rate_window_seconds']:g} s window (real windows); our client on its "
        f"defaults ({budget['search']} searches and {budget['org']} requests per minute). "
        "Requests are the emulator's counts.",
        "",
        "| client | finished | wall s | requests | search | by id | list | other | 429s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    clients = [("ours", ours)]
    if sync.get("ours_like_for_like"):
        clients.append(("ours, the tap's entities only", sync["ours_like_for_like"]))
    label = (
        "singer, as published"
        if tap.get("as_published")
        else ("singer, its crash on a spent rate window mended (`singer_wrapper.py`)")
    )
    clients += [(label, tap)] if "wall_seconds" in tap else []
    for name, run in clients:
        r = run["requests"]
        finished = "yes" if run["finished"] else f"no: {run.get('error')}"
        lines.append(
            f"| {name} | {finished} | {run['wall_seconds']:.1f} | {r['total']} | {r['search']} "
            f"| {r['by_id']} | {r['list']} | {r['other']} | {r['status_429']} |"
        )
    steps = ours.get("step_seconds", {})
    rows = entity_rows(sync)
    entity_steps = sum(steps.get(r["entity"], 0.0) for r in rows)
    other_steps = sum(steps.values()) - entity_steps
    run_seconds = ours.get("run_seconds")
    split = f"Our wall time: {ours['wall_seconds']:.0f} s"
    if run_seconds is not None:
        split += (
            f" = {ours['wall_seconds'] - run_seconds:.0f} s CLI start-up and shut-down + "
            f"{run_seconds:.0f} s inside the Dagster run"
        )
    if steps:
        split += (
            f", of which {entity_steps:.0f} s in the {len(rows)} entity assets and "
            f"{other_steps:.0f} s in {len(steps) - len(rows)} asset checks (the rest: "
            "Dagster's per-step bookkeeping between steps)"
        )
    lines += [
        "",
        split + ".",
        "",
        "Per entity (ours): records/min = records / the asset step's seconds; ceiling = what "
        "the request kind yields at most under the default budget (search: "
        f"{budget['search']} searches/min x {budget['search_page']} records; by id: "
        f"{budget['org']} requests/min x 1 record; lists: {budget['org']}/min x "
        f"{budget['list_page']}). A step that fits in what is left of a rate window is not "
        "budget-bound, so a small one can exceed the ceiling, and one that starts after "
        "others spent the window falls below it.",
        "",
        "| entity | kind | records | step s | records/min | ceiling/min | of ceiling "
        "| requests | req/record | complete | dups |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        requests = r["requests"] + r["by_id_requests"]
        lines.append(
            f"| {r['entity']} | {r['kind']} | {r['records']:,} | {_num(r['step_seconds'], 1)} "
            f"| {_int(r['records_per_minute'])} | {_int(r['ceiling_per_minute'])} "
            f"| {_pct(r['share_of_ceiling'])} | {requests} | {_num(r['requests_per_record'], 3)} "
            f"| {_pct(r['complete'])} | {r['duplicates']} |"
        )
    lines += [
        "",
        "Requests per record by kind:",
        "",
        "| client | kind | records | requests | req/record |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind, entry in per_kind(rows).items():
        lines.append(
            f"| ours | {kind} | {entry['records']:,} | {entry['requests']} "
            f"| {_num(entry['requests_per_record'], 4)} |"
        )
    if "wall_seconds" in tap:
        for kind, entry in singer_per_kind(tap).items():
            lines.append(
                f"| singer | {kind} | {entry['records']:,} | {entry['requests']} "
                f"| {_num(entry['requests_per_record'], 4)} |"
            )
        lines += [
            "",
            "Singer, per stream (records = RECORD messages; complete = expected ids landed):",
            "",
            "| stream | records | distinct ids | duplicates | complete | missing (deleted) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for stream in tap["streams"]:
            c = tap.get("complete", {}).get(stream, {})
            lines.append(
                f"| {stream} | {tap['records'].get(stream, 0):,} "
                f"| {tap['distinct_ids'].get(stream, 0):,} | {tap['duplicates'].get(stream, 0):,} "
                f"| {_pct(c.get('ratio'))} | {c.get('missing', '-')} "
                f"({c.get('missing_deleted', '-')}) |"
            )
        ratios = sync["ratios_ours_over_singer"]
        like = ratios["like_for_like_requests"]
        lines += [
            "",
            f"Ratios ours / Singer: wall {ratios['wall']}x (inside the Dagster run "
            f"{ratios['wall_inside_dagster_run']}x"
            + (
                f"; ours on the tap's entities alone {ratios['wall_like_for_like']}x"
                if ratios.get("wall_like_for_like") is not None
                else ""
            )
            + f"); requests {ratios['requests']}x in all, "
            f"{ratios['requests_like_for_like']}x on the entities both land ({like['ours']} / "
            f"{like['singer']}); searches {ratios['search_requests']}x. The tap finished: "
            f"{'yes' if tap['finished'] else 'no (' + str(tap.get('error')) + ')'}; it lands "
            f"{len(tap['streams'])} of our 13 entities (no CSAT, brands, forms, custom "
            "attributes, klasses) and list streams only partially (it keeps list records "
            "updated since `start_date`).",
        ]
    return lines


def mapping_section(mapping: dict[str, Any] | None) -> list[str]:
    if not mapping:
        return []
    lines = [
        "",
        "## Map + write throughput, no HTTP (`mapping_throughput.py`)",
        "",
        "Recorded JSON pages (the emulator's records, new ids per pass) mapped in batches of "
        "5,000 by `RecordMapper.frame` and written as one window by "
        "`DeltaStore.replace_days` + `commit`; page decoding is not timed.",
        "",
        "| entity | records | seconds | map s | write s | records/min | per CPU-min "
        "| peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in mapping["runs"]:
        lines.append(
            f"| {run['entity']} | {run['records']:,} | {run['seconds']} | {run['map_seconds']} "
            f"| {run['write_seconds']} | {run['records_per_minute']:,} "
            f"| {run['records_per_cpu_minute']:,} | {run['peak_rss_mb']} |"
        )
    return lines


def memory_section(memory: dict[str, Any] | None) -> list[str]:
    if not memory:
        return []
    lines = [
        "",
        "## Peak RSS as history grows (`memory_growth.py`)",
        "",
        f"{memory['entity']}: the whole history in one window (`replace_days`, batches of "
        f"{memory['batch_records']:,}, one commit), each size in a fresh process reading pages "
        "from a file one at a time. base = RSS after imports; staged = peak before the commit.",
        "",
        "| size | records | peak MB | base MB | added MB | staged MB | seconds | records/min |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in memory["runs"]:
        lines.append(
            f"| {run['factor']}x | {run['records']:,} | {run['peak_rss_mb']:.0f} "
            f"| {run['base_rss_mb']:.0f} | {run['added_mb']:.0f} "
            f"| {run.get('staged_rss_mb', 0):.0f} | {run['seconds']} "
            f"| {run['records_per_minute']:,} |"
        )
    added = memory.get("added_growth_pct_first_to_last")
    lines += [
        "",
        f"Growth of peak RSS {memory['runs'][0]['factor']}x -> {memory['runs'][-1]['factor']}x: "
        f"{memory['growth_pct_first_to_last']:+.1f}% (of what the run adds to the imports: "
        f"{'-' if added is None else f'{added:+.1f}%'}); slope "
        f"{memory['slope_mb_per_million_records']:.1f} MB per million records.",
    ]
    return lines


def feedback_section(feedback: dict[str, Any] | None) -> list[str]:
    if not feedback:
        return []
    full, inc = feedback["full"], feedback["incremental"]
    tables = ", ".join(
        f"{k} {v['rows']:,} rows / {v['files']} files" for k, v in feedback["tables"].items()
    )
    check = full["same_result"]
    return [
        "",
        "## `feedback`: full build, 1% incremental, DuckDB (`feedback_vs_duckdb.py`)",
        "",
        f"Raw tables generated in polars and written as the lake lays them out "
        f"({feedback['days']} days, Delta partitioned by `partition_date`): {tables}. "
        f"Both engines on {feedback['threads']} threads; DuckDB reads "
        f"{feedback['duckdb_reads']}.",
        "",
        "| step | seconds |",
        "| --- | --- |",
        f"| ours: `build_feedback(store, None)` | {full['ours_build_seconds']} |",
        f"| ours: `write_full` (Delta write) | {full['ours_write_seconds']} |",
        f"| DuckDB: same join, to Arrow | {full['duckdb_seconds']} |",
        f"| 1% change written ({inc['changed_conversations']:,} conversations) "
        f"| {inc['change_write_seconds']} |",
        f"| incremental: `find_changes` | {inc['find_seconds']} |",
        f"| incremental: `build_feedback(store, ids)` ({inc['conversations_rebuilt']:,} ids) "
        f"| {inc['build_seconds']} |",
        f"| incremental: `merge_changes` | {inc['merge_seconds']} |",
        *recent_rows(feedback.get("incremental_recent")),
        "",
        f"ours / DuckDB: {full['ratio_ours_over_duckdb']:.2f}x. Same result: "
        f"{check['equal']} ({check.get('columns_compared', '-')} columns, {check['rows']:,} "
        f"rows compared; differing: {check.get('differing') or 'none'}). Incremental refresh "
        f"{inc['total_seconds']} s = {inc['ratio_of_full_build_with_write']:.1%} of the full "
        f"build with its write ({inc['ratio_of_full_join']:.1%} of the join alone)"
        f"{recent_note(feedback.get('incremental_recent'), inc)}. "
        f"Peak RSS {feedback['peak_rss_mb']:,} MB"
        + (
            " (the process's peak after each phase: "
            + ", ".join(f"{k} {v:,}" for k, v in feedback["peak_rss_mb_after"].items())
            + " MB)."
            if feedback.get("peak_rss_mb_after")
            else "."
        ),
    ]


def recent_rows(recent: dict[str, Any] | None) -> list[str]:
    """The realistic refresh's steps (the most recently created 1% changed), when measured."""
    if not recent:
        return []
    return [
        f"| 1% most recently created changed ({recent['changed_conversations']:,} "
        f"conversations, created from {recent['changed_created_from'][:10]}) "
        f"| {recent['change_write_seconds']} |",
        f"| realistic incremental: `find_changes` | {recent['find_seconds']} |",
        f"| realistic incremental: `build_feedback(store, ids)` "
        f"({recent['conversations_rebuilt']:,} ids) | {recent['build_seconds']} |",
        f"| realistic incremental: `merge_changes` | {recent['merge_seconds']} |",
    ]


def recent_note(recent: dict[str, Any] | None, uniform: dict[str, Any]) -> str:
    """Both refreshes' share of the full build, and the partitions each rewrote."""
    if not recent:
        return ""
    return (
        f" with the changes spread uniformly over all history, which rewrote "
        f"{uniform['partitions_rewritten']} of {uniform['partitions']} feedback partitions "
        "(copy-on-write: every partition a change touches is rewritten); with the 1% most "
        f"recently created conversations changed, the realistic case, "
        f"{recent['total_seconds']} s = {recent['ratio_of_full_build_with_write']:.1%} "
        f"({recent['ratio_of_full_join']:.1%} of the join alone), rewriting "
        f"{recent['partitions_rewritten']} of {recent['partitions']}"
    )


def requests_section(rpr: dict[str, Any] | None) -> list[str]:
    if not rpr:
        return []
    lines = [
        "",
        f"## Requests per record, {rpr['days']}-day extraction (`requests_per_record.py`)",
        "",
        "| entity | variant | records | requests | records/request |",
        "| --- | --- | --- | --- | --- |",
    ]
    for context, entry in rpr["contexts"].items():
        for variant, label in (("baseline", "taps: 1 day x 100"), ("ours", "ours: 7 days x 500")):
            row = entry[variant]
            lines.append(
                f"| {context} | {label} | {row['records']:,} | {row['requests']} "
                f"| {row['records_per_request']} |"
            )
        lines.append(f"| {context} | | | {entry['fewer_requests']}x fewer | |")
    return lines


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _int(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


# ----------------------------------------------------------------------------- main


def shown(argument: str) -> str:
    """`argument` as a reader types it: the interpreter relative to the repo."""
    if argument == sys.executable:
        try:
            return str(Path(argument).relative_to(REPO))
        except ValueError:
            return argument
    return argument


def run_piece(piece: Piece, nice: int) -> None:
    print(f"\n=== {piece.name}: {shlex.join(shown(c) for c in piece.command)}", flush=True)
    prefix = ["nice", "-n", str(nice)] if nice else []
    began = time.perf_counter()
    done = subprocess.run([*prefix, *piece.command], cwd=REPO, check=False)
    piece.seconds = round(time.perf_counter() - began, 1)
    piece.exit_code = done.returncode
    print(f"=== {piece.name}: exit {done.returncode} in {piece.seconds:.0f} s", flush=True)


def sizes_of(results: dict[str, Any]) -> dict[str, str]:
    sizes = {}
    sync = results.get("full_sync")
    if sync:
        org = sync["org"]
        sizes["full_sync"] = (
            ISSUE_SIZES["full_sync"]
            if org["scale"] == 1
            else f"scale {org['scale']:g} ({org['counts'].get('conversation', 0):,} conversations)"
        )
    mapping = results.get("mapping_throughput")
    if mapping:
        counts = mapping["counts"]
        sizes["mapping_throughput"] = (
            ISSUE_SIZES["mapping_throughput"]
            if counts == {"conversations": 1_000_000, "messages": 5_000_000}
            else f"{counts['conversations']:,} conversations / {counts['messages']:,} messages"
        )
    feedback = results.get("feedback_vs_duckdb")
    if feedback:
        s = feedback["sizes"]
        label = (
            f"{s['conversations']:,} conversations / {s['messages']:,} messages / "
            f"{s['customers']:,} customers"
        )
        full = s == {"conversations": 1_000_000, "messages": 5_000_000, "customers": 200_000}
        sizes["feedback_vs_duckdb"] = ISSUE_SIZES["feedback_vs_duckdb"] if full else label
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the issue's sizes (make bench-full)")
    parser.add_argument("--scale", type=float, help="full sync scale (default 0.2; --full: 1)")
    parser.add_argument("--only", default="", help=f"comma-separated of {','.join(ALL_PIECES)}")
    parser.add_argument("--skip", default="", help="comma-separated pieces not to run")
    parser.add_argument("--nice", type=int, default=0, help="run the pieces under `nice -n N`")
    parser.add_argument("--report-only", action="store_true", help="rebuild from existing JSON")
    parser.add_argument("--label", help="how the suite was invoked (e.g. `make bench`)")
    args = parser.parse_args()
    only = {p for p in args.only.split(",") if p}
    skip = {p for p in args.skip.split(",") if p}
    unknown = (only | skip) - set(ALL_PIECES)
    if unknown:
        parser.error(f"unknown pieces: {sorted(unknown)}")
    started = datetime.now(UTC)
    load_start = os.getloadavg()[0]
    began = time.perf_counter()
    listed = pieces(args)
    previous = load(BENCH_JSON) or {}
    previous_pieces = {p["name"]: p for p in previous.get("pieces", [])}
    if not args.report_only:
        for piece in listed:
            if (only and piece.name not in only) or piece.name in skip:
                continue
            run_piece(piece, args.nice)
    for piece in listed:  # pieces not run now keep what the last run recorded
        if piece.seconds is None and piece.name in previous_pieces:
            kept = previous_pieces[piece.name]
            piece.seconds, piece.recorded = kept["seconds"], kept["command"]
            piece.exit_code = kept["exit_code"]
    results = {p.name: load(p.output) for p in listed}
    results = {k: v for k, v in results.items() if v is not None}
    sizes = sizes_of(results)
    checks = acceptance(results, sizes)
    invoked = shlex.join([shown(sys.executable), *sys.argv])
    bench: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds_in_all": round(time.perf_counter() - began, 1),
        "mode": "full (issue sizes)" if args.full else "quick (make bench)",
        "command": args.label or invoked,
        "machine": machine(),
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "pieces": [
            {
                "name": p.name,
                "command": p.recorded or [shown(c) for c in p.command],
                "seconds": p.seconds,
                "exit_code": p.exit_code,
            }
            for p in listed
        ],
        "sizes": sizes,
        "acceptance": [asdict(c) for c in checks],
        "results": results,
    }
    if args.report_only:  # the run's own facts, not this rebuild's
        kept = ("started_at", "finished_at", "seconds_in_all", "mode", "command")
        bench.update({k: previous[k] for k in (*kept, "load_start", "load_end") if k in previous})
    elif (only or skip) and previous:  # a partial run: the others' figures are the last run's
        ran = [p.name for p in listed if (not only or p.name in only) and p.name not in skip]
        bench["command"] = f"{previous.get('command')}; then {bench['command']}"
        bench["mode"] = f"{previous.get('mode')}, then {', '.join(ran)} again"
        bench["started_at"] = previous.get("started_at", bench["started_at"])
        bench["load_start"] = previous.get("load_start", load_start)
        bench["seconds_in_all"] = round(
            previous.get("seconds_in_all", 0) + bench["seconds_in_all"], 1
        )
    print_table(checks)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    BENCH_JSON.write_text(json.dumps(bench, indent=2, default=str) + "\n", encoding="utf-8")
    REPORT.write_text(markdown(bench), encoding="utf-8")
    print(f"\nwrote {BENCH_JSON.relative_to(REPO)} and {REPORT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
