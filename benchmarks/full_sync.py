"""Full sync of every entity from one emulator: our assets against Singer's tap-kustomer 1.1.0.

Issue 9 asks what a new user gets from `dagster asset materialize` over a whole history, next
to the tap they would otherwise use, on the same data in the same run. So this script starts
ONE emulator shaped like the issue's reference org and runs both clients against it in turn:

- the org: `--days` days (10) holding `10,000 x --scale` conversations, 95% of them updated on
  one spike day (the last: a bulk macro run, moved there with the emulator's own `change`),
  with the customers, messages, notes, CSAT, kobjects and lists the emulator generates around
  them (at `--scale 1` about 6k customers, 49k messages, 6k notes: the issue's 7k / 42k / 7k);
- the budgets: the emulator enforces the issue's org limits (1,000 requests and 100 searches
  per 60 s window) and our client runs on the defaults a new user gets (half of each); no
  budget setting of ours is overridden. The windows are real 60 s ones: both clients pace
  themselves per 60 s (ours in `RateBudget`, not a setting; the tap in `ratelimit(250, 60)`),
  so a shortened emulator window would measure that mismatch, not the budgets;
- the tap (`singer_tap.py`): its own venv, its hard-coded host redirected by
  `singer_wrapper.py`, every stream it has that the emulator serves. The published tap dies on
  the first rate window it spends (`reset_in - now` with the header's text: "unsupported
  operand type(s) for -: 'str' and 'float'"), so its wall clock was that of a partial sync
  ending whenever that happened (76 to 751 s across runs); the wrapper mends that one
  operation so the tap waits for the reset as its code intends and finishes, and
  `--tap-as-published` keeps the crash;
- ours: the command README gives, `dagster asset materialize -m kustomer_assets.definitions
  --select <every entity> --partition-range <first>...<today>`, on a fresh `DAGSTER_HOME` and
  Delta root, with only the connection variables set;
- ours again, after a fresh rate window, on the tap's entities alone (`TAP_ENTITIES`, its own
  Dagster home and Delta root): the wall clock like for like, as the issue compared it
  ("faster on the entities it completes"); `--skip-like-for-like` leaves it out.

Requests come from the emulator's counters (a snapshot around each client), never from a
client's own report; completeness compares the ids each client landed with the emulator's
truth (records updated since the first day, deleted ones included, for searched entities;
the whole list for lists). Between the two runs the script waits for a fresh rate window when
the first client left less budget than the second may use.

Two shapes of the emulator's data differ from what the tap's schemas (written from the real
API's answers) expect, and each crashes the tap on its first page, so by default the data is
served in the tap's shape, for both clients alike (ours reads either):

- an empty to-one relationship: the emulator serves `{"data": null}`, the tap's recorded
  responses omit it (its denesting calls `.copy()` on `data`);
- `note.userMentions`: the emulator serves id strings, the tap's schema objects `{type, id}`.

`--emulator-shapes` keeps the emulator's own shapes, to show those crashes.

    .venv/bin/python benchmarks/full_sync.py --scale 0.05      # smoke, about 2 minutes
    .venv/bin/python benchmarks/full_sync.py                   # the issue's size

Prints one table per client and entity, then the ratios ours / Singer, and writes everything
to `benchmarks/results/full_sync.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import singer_tap

from kustomer_assets.emulator import Emulator, EmulatorConfig
from kustomer_assets.entities import (
    ENTITIES,
    ENTITIES_BY_NAME,
    ByIdSource,
    EntitySpec,
    MetadataSource,
)
from kustomer_assets.kustomer.settings import KustomerSettings

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "full_sync.json"
KEY = "benchmark-key"

ISSUE_CONVERSATIONS = 10_000
"""The issue's reference org: 10k conversations over 10 days ..."""
ISSUE_SPIKE_SHARE = 0.95
"""... 9,500 of them on one spike day."""
EMULATOR_CONVERSATIONS_PER_DAY = 60
"""What the emulator generates per day at its scale 1 (`emulator/dataset.py`)."""
ORG_LIMIT = 1_000
SEARCH_LIMIT = 100
"""The issue's limits: Enterprise org budget and the API-key search budget, per minute."""

TAP_ENTITIES: tuple[str, ...] = tuple(singer_tap.DEFAULT_STREAMS)
"""The entities tap-kustomer syncs (its streams are named like our assets): ours is run a
second time on these alone, for the wall clock like for like."""
SHARED_LIST_KINDS = ("list_users", "list_teams", "list_tags")
SHARED_CONTEXTS = ("conversation", "customer", "message", "note", "kobject")
"""What both clients land: requests on these (plus token checks, customers by id and
unserved ones) are the like-for-like count; the rest is entities only we have."""


# ----------------------------------------------------------------------------- the org


def emulator_config(days: int, scale: float, seed: int) -> EmulatorConfig:
    """The emulator's scale that yields `10,000 x scale` conversations over `days`."""
    emulator_scale = ISSUE_CONVERSATIONS * scale / (EMULATOR_CONVERSATIONS_PER_DAY * days)
    return EmulatorConfig(
        seed=seed,
        days=days,
        scale=emulator_scale,
        api_keys={KEY: None},
        org_rate_limit=ORG_LIMIT,
        search_rate_limit=SEARCH_LIMIT,
        rate_window_seconds=60.0,
    )


def serve_tap_shapes(emulator: Emulator) -> dict[str, int]:
    """Rewrite the two shapes the tap cannot read (module docstring) in place, before serving.

    Runs before the emulator starts, so no response ever carries the other shape; records are
    replaced, not edited, as the dataset's copy-on-write contract asks.
    """
    dropped = mentions = 0
    dataset = emulator.dataset
    with dataset.lock:
        for records in dataset.records.values():
            for id_, record in list(records.items()):
                relationships = record.get("relationships") or {}
                empty = [k for k, v in relationships.items() if _empty_relationship(v)]
                attributes = record.get("attributes") or {}
                raw = attributes.get("userMentions")
                mentioned: list[Any] = raw if isinstance(raw, list) else []
                strings = any(isinstance(m, str) for m in mentioned)
                if not empty and not strings:
                    continue
                new = {**record}
                if empty:
                    new["relationships"] = {
                        k: v for k, v in relationships.items() if k not in empty
                    }
                    dropped += len(empty)
                if strings:
                    new["attributes"] = {
                        **attributes,
                        "userMentions": [
                            {"type": "user", "id": m} if isinstance(m, str) else m
                            for m in mentioned
                        ],
                    }
                    mentions += 1
                records[id_] = new
        dataset.version += 1
    return {"empty_relationships_dropped": dropped, "user_mentions_as_objects": mentions}


def _empty_relationship(value: Any) -> bool:
    return isinstance(value, dict) and "data" in value and value["data"] is None


def add_spike(emulator: Emulator, share: float) -> int:
    """Update `share` of the conversations now: the spike day is the last one."""
    total = len(emulator.dataset.records.get("conversation", {}))
    return len(emulator.dataset.change("conversation", round(total * share)))


def wait_for_budget(emulator: Emulator, org: int, search: int) -> float:
    """Sleep to the next rate window if this one has less left than the next client may use.

    Both clients are measured on their own budget: the second must not inherit a window the
    first spent. Returns the seconds waited (0 when the window had room)."""
    left = emulator.consume()
    remaining, reset = left["remaining"], left["reset"]
    if remaining["org"] >= org and remaining["search"] >= search:
        return 0.0
    pause = max(reset["org"], reset["search"]) - time.time() + 0.5
    if pause > 0:
        time.sleep(pause)
    return max(pause, 0.0)


# ----------------------------------------------------------------------------- truth


def since(start: date) -> datetime:
    return datetime.combine(start, datetime.min.time(), UTC)


def our_truth(emulator: Emulator, start: date) -> dict[str, tuple[set[str], set[str]]]:
    """(expected ids, soft-deleted ids) per entity of ours for a complete sync from `start`.

    Searched entities: records updated since `start` (deleted ones included: a full sync must
    carry deletions). Lists: everything. Custom attributes: one id `<object>.<name>` per
    definition of the objects the spec reads (the entity's documented id). CSAT responses,
    fetched by id: those the window's conversations point at.
    """
    out: dict[str, tuple[set[str], set[str]]] = {}
    for spec in ENTITIES:
        records = emulator.truth(spec.kustomer_type)
        source = spec.source
        if isinstance(source, MetadataSource):
            expected = {
                f"{r['id']}.{name}"
                for r in records
                if r["id"] in source.objects
                for name in (r.get("attributes") or {}).get("properties") or {}
            }
        elif isinstance(source, ByIdSource):
            expected = _referenced_ids(emulator, spec, start)
        else:
            expected = singer_tap.truth_ids(records, since(start) if spec.is_searched else None)
        out[spec.name] = (expected, singer_tap.deleted_ids(records) & expected)
    return out


def _referenced_ids(emulator: Emulator, spec: EntitySpec, start: date) -> set[str]:
    source = spec.source
    assert isinstance(source, ByIdSource)
    parent = next(s for s in ENTITIES if s.name == source.ids_from)
    records = emulator.truth(parent.kustomer_type)
    window = singer_tap.truth_ids(records, since(start))
    in_window = [r for r in records if r["id"] in window]
    if not in_window:
        return set()
    column = parent.mapper.frame(in_window)[source.id_column]
    return {str(v) for v in column.drop_nulls().to_list()}


# ----------------------------------------------------------------------------- ours


@dataclass
class OurRun:
    """What `dagster asset materialize` did, as the emulator and the Delta tables show it."""

    command: list[str]
    exit_code: int | None
    finished: bool
    timed_out: bool
    wall_seconds: float
    run_seconds: float | None = None
    """RUN_START to the run's end in Dagster's log (1 s resolution): wall minus the CLI's
    start-up (imports, code location load, instance set-up)."""
    step_seconds: dict[str, float] = field(default_factory=dict)
    """Each step's duration as Dagster logged it (`STEP_SUCCESS ... in 1.21s`): the entities'
    assets and their checks, in run order."""
    records: dict[str, int] = field(default_factory=dict)
    distinct_ids: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    """Rows beyond the first with the same (id, updated_at): the row key of every table."""
    requests: dict[str, Any] = field(default_factory=dict)
    emulator_stats: dict[str, int] = field(default_factory=dict)
    complete: dict[str, dict[str, int | float]] = field(default_factory=dict)
    error: str | None = None
    ids: dict[str, set[str]] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("ids")
        return out


def our_environment(base_url: str, first: str, work: Path) -> dict[str, str]:
    """The shell a new user has: the connection variables and nothing else of ours.

    Any `KUSTOMER_*` of the caller's shell is dropped, so budgets and toggles are defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUSTOMER_")}
    env.update(
        KUSTOMER_BASE_URL=base_url,
        KUSTOMER_API_KEY=KEY,
        KUSTOMER_DELTA_ROOT=str(work / "delta"),
        KUSTOMER_PARTITIONS_START=first,
        KUSTOMER_STAGING_DIR=str(work / "staging"),
        DAGSTER_HOME=str(work / "dagster_home"),
    )
    return env


def run_ours(
    emulator: Emulator,
    first: str,
    last: str,
    work: Path,
    timeout: float,
    entities: Sequence[str] = tuple(spec.name for spec in ENTITIES),
) -> OurRun:
    """One single-run backfill of `entities` (every one) over `first...last`, as README tells
    users, into its own Dagster home and Delta root under `work`."""
    (work / "dagster_home").mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("dagster")),
        *("asset", "materialize", "-m", "kustomer_assets.definitions"),
        *("--select", ",".join(entities)),
        *("--partition-range", f"{first}...{last}"),
    ]
    env = our_environment(emulator.base_url, first, work)
    before = emulator.stats
    began = time.perf_counter()
    timed_out = False
    with open(work / "dagster.log", "w", encoding="utf-8") as log:
        try:
            done = subprocess.run(
                command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=timeout
            )
            exit_code: int | None = done.returncode
        except subprocess.TimeoutExpired:
            timed_out, exit_code = True, None
    wall = time.perf_counter() - began
    delta = singer_tap.stats_delta(before, emulator.stats)
    run = OurRun(
        command=command,
        exit_code=exit_code,
        finished=exit_code == 0,
        timed_out=timed_out,
        wall_seconds=round(wall, 2),
        requests=singer_tap.request_kinds(delta),
        emulator_stats=delta,
    )
    for spec in (ENTITIES_BY_NAME[name] for name in entities):
        table = read_table(work / "delta" / spec.name)
        ids = set(table["id"].to_list()) if table is not None else set()
        rows = table.height if table is not None else 0
        versions = table.select("id", "updated_at").n_unique() if table is not None else 0
        run.records[spec.name] = rows
        run.distinct_ids[spec.name] = len(ids)
        run.duplicates[spec.name] = rows - versions
        run.ids[spec.name] = ids
    text = (work / "dagster.log").read_text(encoding="utf-8", errors="replace")
    run.run_seconds = run_seconds(text)
    run.step_seconds = step_seconds(text)
    if not run.finished:
        lines = [line for line in text.splitlines() if line.strip()]
        failures = [line for line in lines if "STEP_FAILURE" in line or "Error" in line]
        run.error = ((failures or lines or ["killed at the time limit"])[-1])[:500]
    return run


def run_seconds(log: str) -> float | None:
    """Seconds from RUN_START to RUN_SUCCESS / RUN_FAILURE in a `dagster` CLI log."""
    stamps: dict[str, datetime] = {}
    for line in log.splitlines():
        for event in ("RUN_START", "RUN_SUCCESS", "RUN_FAILURE"):
            if f" - {event} - " in line:
                with contextlib.suppress(ValueError):
                    stamps[event] = datetime.strptime(line[:25], "%Y-%m-%d %H:%M:%S %z")
    end = stamps.get("RUN_SUCCESS") or stamps.get("RUN_FAILURE")
    start = stamps.get("RUN_START")
    return (end - start).total_seconds() if start and end else None


STEP_DONE = re.compile(r' - (STEP_SUCCESS|STEP_FAILURE) - .*?step "([^"]+)" in ([0-9.hms]+)\.')
DURATION_PART = re.compile(r"([0-9.]+)(ms|h|m|s)")
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def step_seconds(log: str) -> dict[str, float]:
    """Step key -> seconds, from Dagster's `Finished execution of step "x" in 4m52s.` lines
    (its `format_duration`: 0.83ms, 533ms, 5.6s, 4m52s, 1h4m)."""
    out: dict[str, float] = {}
    for line in log.splitlines():
        found = STEP_DONE.search(line)
        if found:
            parts = DURATION_PART.findall(found.group(3))
            out[found.group(2)] = round(sum(float(v) * UNIT_SECONDS[u] for v, u in parts), 3)
    return out


def read_table(path: Path) -> pl.DataFrame | None:
    if not (path / "_delta_log").exists():
        return None  # an entity the run skipped or failed before its first commit
    return pl.read_delta(str(path), columns=["id", "updated_at"])


# ----------------------------------------------------------------------------- report


def like_for_like_requests(delta: Mapping[str, int]) -> int:
    """Requests on what both clients land (see SHARED_*); both sides counted the same way."""
    kinds = singer_tap.request_kinds(delta)
    searches = sum(delta.get(f"search.{c}", 0) for c in SHARED_CONTEXTS)
    lists = sum(delta.get(f"requests.{k}", 0) for k in SHARED_LIST_KINDS)
    by_id = delta.get("requests.get_customer", 0)
    return searches + lists + by_id + kinds["token_checks"] + kinds["unserved"]


def ratio(ours: float, theirs: float) -> float | None:
    return round(ours / theirs, 2) if theirs else None


def _complete(entry: Mapping[str, int | float] | None) -> str:
    """`complete` and `missing` cells: share of expected ids landed, and what is missing."""
    if not entry:
        return f"{'-':>9}{'-':>13}"
    missing = f"{entry['missing']} ({entry['missing_deleted']} del)" if entry["missing"] else "0"
    return f"{100 * float(entry['ratio']):>8.1f}%{missing:>13}"


def print_report(
    org: Mapping[str, Any], ours: OurRun, tap: singer_tap.TapRun | None, tap_reason: str | None
) -> dict[str, Any]:
    """The two tables and the ratios; returns the ratios for the JSON."""
    print(
        f"\norg: {org['days']} days from {org['first_day']}, "
        + ", ".join(f"{v} {k}" for k, v in org["counts"].items() if v)
        + f"; spike {org['spike_conversations']} conversations on {org['last_day']}; "
        f"limits {ORG_LIMIT} org / {SEARCH_LIMIT} search per 60 s"
    )
    header = (
        f"{'client':<10}{'exit':>6}{'wall s':>9}{'requests':>10}{'search':>8}{'by-id':>7}"
        f"{'list':>6}{'other':>7}{'429s':>6}  finished"
    )
    print("\n" + header + "\n" + "-" * len(header))
    clients: list[tuple[str, Any]] = [("ours", ours)]
    if tap is not None:
        clients.append(("singer", tap))
    for name, run in clients:
        r = run.requests
        print(
            f"{name:<10}{run.exit_code!s:>6}{run.wall_seconds:>9.1f}{r['total']:>10}"
            f"{r['search']:>8}{r['by_id']:>7}{r['list']:>6}{r['other']:>7}{r['status_429']:>6}"
            f"  {'yes' if run.finished else 'no: ' + (run.error or '?')[:70]}"
        )
    if tap is None:
        print(f"{'singer':<10}  not run: {tap_reason}")
    if ours.run_seconds is not None:
        print(
            f"ours: {ours.run_seconds:.0f} s inside the Dagster run, "
            f"{ours.wall_seconds - ours.run_seconds:.0f} s CLI start-up and shut-down"
        )

    entities = list(ours.records) + [s for s in (tap.streams if tap else []) if s not in ours.ids]
    header = (
        f"{'entity':<19}{'expected':>9} | {'ours rows':>9}{'ids':>7}{'dups':>6}{'complete':>9}"
        f"{'missing':>13} | {'tap recs':>8}{'ids':>7}{'dups':>6}{'complete':>9}{'missing':>13}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    blank = f"{'-':>9}{'-':>7}{'-':>6}{'-':>9}{'-':>13}"
    for entity in entities:
        expected = (ours.complete.get(entity) or (tap.complete.get(entity) if tap else {})) or {}
        sides = []
        for run in (ours, tap):
            if run is None or entity not in run.records:
                sides.append(blank)
                continue
            sides.append(
                f"{run.records[entity]:>9}{run.distinct_ids[entity]:>7}"
                f"{run.duplicates[entity]:>6}{_complete(run.complete.get(entity))}"
            )
        print(f"{entity:<19}{expected.get('expected', '-')!s:>9} | {sides[0]} | {sides[1]}")
    print("missing: expected ids not landed (of which soft-deleted: deletions never learnt)")

    ratios: dict[str, Any] = {}
    if tap is not None:
        ours_shared = like_for_like_requests(ours.emulator_stats)
        tap_shared = like_for_like_requests(tap.emulator_stats)
        ratios = {
            "wall": ratio(ours.wall_seconds, tap.wall_seconds),
            "wall_inside_dagster_run": ratio(ours.run_seconds or 0.0, tap.wall_seconds),
            "requests": ratio(ours.requests["total"], tap.requests["total"]),
            "requests_like_for_like": ratio(ours_shared, tap_shared),
            "like_for_like_requests": {"ours": ours_shared, "singer": tap_shared},
            "search_requests": ratio(ours.requests["search"], tap.requests["search"]),
        }
        print(
            f"\nours / singer: wall {ratios['wall']}x "
            f"(inside the Dagster run {ratios['wall_inside_dagster_run']}x), "
            f"requests {ratios['requests']}x "
            f"(on the entities both land: {ours_shared} / {tap_shared} = "
            f"{ratios['requests_like_for_like']}x), searches {ratios['search_requests']}x"
        )
        if tap.unserved_requests:
            print("requests the emulator does not serve (404, no route):")
            for line in tap.unserved_requests:
                print(f"  {line}")
    return ratios


def print_like_for_like(like: OurRun, tap: singer_tap.TapRun | None) -> dict[str, Any]:
    """Our second run, on the tap's entities only: its wall against the tap's (the issue's
    own comparison: "faster on the entities it completes"); returns the ratios for the JSON."""
    complete = all(float(c["ratio"]) == 1.0 for c in like.complete.values())
    print(
        f"\nours on the tap's entities only: exit {like.exit_code}, wall {like.wall_seconds:.1f} s"
        f" ({like.run_seconds or 0:.0f} s inside the Dagster run), "
        f"{like.requests['total']} requests ({like.requests['search']} searches), "
        f"{like.requests['status_429']} 429s, every entity complete: {complete}"
    )
    if tap is None:
        return {}
    ratios = {
        "wall_like_for_like": ratio(like.wall_seconds, tap.wall_seconds),
        "requests_like_for_like_run": ratio(like.requests["total"], tap.requests["total"]),
    }
    print(
        f"ours / singer on the same entities: wall {ratios['wall_like_for_like']}x "
        f"({like.wall_seconds:.0f} s / {tap.wall_seconds:.0f} s), requests "
        f"{ratios['requests_like_for_like_run']}x"
    )
    return ratios


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--scale", type=float, default=1.0, help="1 = the issue's 10k convs")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--spike-share", type=float, default=ISSUE_SPIKE_SHARE)
    parser.add_argument(
        "--tap-streams", default=",".join(singer_tap.DEFAULT_STREAMS), help="comma-separated"
    )
    parser.add_argument("--skip-singer", action="store_true")
    parser.add_argument(
        "--tap-as-published",
        action="store_true",
        help="keep the tap's crash on a spent rate window (see singer_wrapper.py)",
    )
    parser.add_argument(
        "--skip-like-for-like",
        action="store_true",
        help="no second run of ours on only the tap's entities",
    )
    parser.add_argument("--emulator-shapes", action="store_true", help="see module docstring")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per client")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep-work", action="store_true", help="keep logs and Delta tables")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="full-sync-"))
    began = time.perf_counter()
    emulator = Emulator(emulator_config(args.days, args.scale, args.seed))
    shapes = {} if args.emulator_shapes else serve_tap_shapes(emulator)
    spike = add_spike(emulator, args.spike_share)
    with emulator:
        first_day = emulator.dataset.start.date()
        last_day = emulator.dataset.clock().date()
        org = {
            "days": args.days,
            "scale": args.scale,
            "seed": args.seed,
            "first_day": first_day.isoformat(),
            "last_day": last_day.isoformat(),
            "counts": emulator.dataset.counts(),
            "spike_conversations": spike,
            "org_rate_limit": ORG_LIMIT,
            "search_rate_limit": SEARCH_LIMIT,
            "rate_window_seconds": 60.0,
            "tap_shapes": shapes or "emulator's own shapes",
        }
        print(f"emulator up at {emulator.base_url} in {time.perf_counter() - began:.1f} s")

        tap: singer_tap.TapRun | None = None
        tap_reason: str | None = "--skip-singer" if args.skip_singer else None
        if not args.skip_singer:
            streams = [s for s in args.tap_streams.split(",") if s]
            try:
                print(f"singer: syncing {', '.join(streams)} ...", flush=True)
                tap = singer_tap.run_tap(
                    emulator.base_url,
                    KEY,
                    first_day,
                    streams=streams,
                    timeout_seconds=args.timeout,
                    work_dir=work / "singer",
                    as_published=args.tap_as_published,
                )
            except singer_tap.SingerInstallError as exc:
                tap_reason = str(exc)
        waited = wait_for_budget(
            emulator,
            KustomerSettings.org_requests_per_minute,
            KustomerSettings.search_requests_per_minute,
        )
        if waited:
            print(f"waited {waited:.0f} s for a fresh rate window")
        print("ours: dagster asset materialize, every entity ...", flush=True)
        ours = run_ours(emulator, first_day.isoformat(), last_day.isoformat(), work, args.timeout)

        truth = our_truth(emulator, first_day)
        ours.complete = {
            e: singer_tap.completeness(ours.ids.get(e, set()), *t) for e, t in truth.items()
        }
        like: OurRun | None = None
        if not args.skip_like_for_like:
            waited = wait_for_budget(
                emulator,
                KustomerSettings.org_requests_per_minute,
                KustomerSettings.search_requests_per_minute,
            )
            print(
                f"ours again, only the tap's entities ({', '.join(TAP_ENTITIES)})"
                + (f", after {waited:.0f} s for a fresh rate window" if waited else "")
                + " ...",
                flush=True,
            )
            like = run_ours(
                emulator,
                first_day.isoformat(),
                last_day.isoformat(),
                work / "like_for_like",
                args.timeout,
                TAP_ENTITIES,
            )
            like.complete = {
                e: singer_tap.completeness(like.ids.get(e, set()), *truth[e]) for e in TAP_ENTITIES
            }
        if tap is not None:
            tap_truth = singer_tap.stream_truth(emulator.truth, tap.streams, first_day)
            tap.complete = {
                s: singer_tap.completeness(tap.ids.get(s, set()), *t) for s, t in tap_truth.items()
            }
    ratios = print_report(org, ours, tap, tap_reason)
    if like is not None:
        ratios.update(print_like_for_like(like, tap))
    result = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "org": org,
        "ours": ours.as_dict(),
        "ours_like_for_like": like.as_dict() if like is not None else None,
        "singer": tap.as_dict() if tap is not None else {"not_run": tap_reason},
        "ratios_ours_over_singer": ratios,
        "seconds_in_all": round(time.perf_counter() - began, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwrote {args.output} ({result['seconds_in_all']} s in all)")
    if args.keep_work:
        print(f"logs and tables kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
