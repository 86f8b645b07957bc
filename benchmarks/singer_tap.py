"""Run the Singer `tap-kustomer` 1.1.0 from PyPI against a running emulator, and count it.

The full-sync benchmark (`full_sync.py`) compares our assets with the tap most Kustomer users
would otherwise reach for, on the same data in the same run. This module owns the tap's side:
its venv, its config and catalog, the run, and what the run produced.

The tap's venv (made once, reused while `benchmarks/.venv-singer/.installed` names the same
requirement; gitignored). The exact commands, which need nothing but PyPI:

    python3.11 -m venv benchmarks/.venv-singer
    benchmarks/.venv-singer/bin/pip install tap-kustomer==1.1.0

That is the whole recipe on this project's Python (3.11): pip builds the three sdists (the
tap, singer-python 5.8.1, simplejson 3.11.1) with its isolated, current setuptools, and the
pins (backoff 1.8.0, requests 2.31.0, jsonschema 2.6.0, pytz 2018.4) all import on 3.11, so
neither an old setuptools nor `--no-deps` is needed. The resolved set is written to
`.installed` (`pip freeze`) and into the benchmark's JSON, since the tap's open-ended pins
(`python-dateutil>=2.6.0`, ciso8601, urllib3 through requests) may resolve differently later.
`--python` picks another interpreter for a new venv (only 3.11 was tried; delete the
venv to switch).

The tap has no host setting, so it runs under `singer_wrapper.py`, which imports it, replaces
the hard-coded `https://api.kustomerapp.com/v1` with the emulator's loopback root, mends the
one operation that crashed it on the first spent rate window (unless `as_published`), logs
each request line, and calls the tap's `main`. Nothing of the tap is copied here.

What a run reports: Singer RECORD messages and distinct ids per stream (their difference is
the duplicates the tap's `gte <last updatedAt>` re-query emits), exit status, whether it
finished in time, wall seconds, and the requests it made as the emulator counted them (a
snapshot of `/__admin/stats` before and after: this module never trusts the client's own
count), split by kind. Completeness against the emulator's truth is `completeness()`.

    .venv/bin/python benchmarks/singer_tap.py --install-only
    .venv/bin/python benchmarks/singer_tap.py --base-url http://127.0.0.1:8755 \
        --key emulator-key --start-date 2026-11-01
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SINGER_VENV = HERE / ".venv-singer"
WRAPPER = HERE / "singer_wrapper.py"
TAP_REQUIREMENT = "tap-kustomer==1.1.0"
USER_AGENT = "kustomer-assets-benchmark"

TAP_STREAMS: dict[str, str | None] = {
    "conversations": "conversation",
    "customers": "customer",
    "messages": "message",
    "notes": "note",
    "kobjects": "kobject",
    "users": "user",
    "teams": "team",
    "tags": "tag",
    "shortcuts": None,  # the tap's only stream with no emulator type (see DEFAULT_STREAMS)
}
"""Every stream tap-kustomer 1.1.0 has, and the emulator type holding its truth."""

SEARCHED_STREAMS = frozenset({"conversations", "customers", "messages", "notes", "kobjects"})
"""Streams the tap reads by search from `start_date`: their truth is the records updated since.
The others are whole lists, so their truth is every record (the tap keeps only those updated
since `start_date`, which is why it lands them partially)."""

DEFAULT_STREAMS: tuple[str, ...] = tuple(s for s, t in TAP_STREAMS.items() if t is not None)
"""All but `shortcuts`: the emulator serves no `/v1/shortcuts` (the project has no such entity),
and the tap, selecting it, reads the 404 body as a page and crashes before its next stream
(`notes`), which would hide the streams both sides share."""


class SingerInstallError(RuntimeError):
    """The tap's venv could not be made; the message carries pip's own words."""


# ----------------------------------------------------------------------------- the venv


def venv_python(venv: Path = SINGER_VENV) -> Path:
    return venv / "bin" / "python"


def ensure_singer_venv(python: str | None = None, venv: Path = SINGER_VENV) -> Path:
    """Make (once) the tap's own venv and return its interpreter.

    The stamp is written last, so a half-made venv (pip failed, or was interrupted) is made
    again next time instead of being trusted.
    """
    stamp = venv / ".installed"
    if stamp.exists() and venv_python(venv).exists():
        lines = stamp.read_text(encoding="utf-8").splitlines()
        if lines[:1] == [TAP_REQUIREMENT]:
            return venv_python(venv)
    base = python or sys.executable  # a venv's python makes a venv of its base interpreter
    steps = (
        [base, "-m", "venv", "--clear", str(venv)],
        [str(venv_python(venv)), "-m", "pip", "install", "--quiet", TAP_REQUIREMENT],
    )
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-12:]
            raise SingerInstallError(f"`{' '.join(step)}` failed: " + " | ".join(tail))
    frozen = subprocess.run(
        [str(venv_python(venv)), "-m", "pip", "freeze"], capture_output=True, text=True, check=True
    ).stdout
    stamp.write_text(f"{TAP_REQUIREMENT}\n{frozen}", encoding="utf-8")
    return venv_python(venv)


def installed_packages(venv: Path = SINGER_VENV) -> list[str]:
    """The venv's `pip freeze`, as recorded when it was made."""
    stamp = venv / ".installed"
    if not stamp.exists():
        return []
    return [line for line in stamp.read_text(encoding="utf-8").splitlines()[1:] if line]


# ----------------------------------------------------------------------------- the emulator


def admin_get(base_url: str, path: str, timeout: float = 120.0) -> Any:
    """GET an emulator admin route (`/__admin/...`); they draw on no rate budget."""
    with urllib.request.urlopen(f"{base_url.rstrip('/')}{path}", timeout=timeout) as response:
        return json.load(response)


def stats_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Counters that moved between two `/__admin/stats` snapshots."""
    keys = set(before) | set(after)
    moved = {k: after.get(k, 0) - before.get(k, 0) for k in keys}
    return {k: v for k, v in sorted(moved.items()) if v and k != "admin"}


LIST_KINDS = ("conversation_messages", "conversation_notes", "metadata")
"""Emulator route kinds that page a list without a `list_` prefix."""


def request_kinds(delta: Mapping[str, int]) -> dict[str, Any]:
    """Requests by kind from an emulator stats delta.

    `requests` counts every `/v1/` request; `requests.<route>` only those that matched a route
    and authenticated, so the difference (`unserved`) is what the emulator answered 404 for
    want of a route (or 401). `other` = token checks + unserved.
    """
    routed = {k.removeprefix("requests."): v for k, v in delta.items() if k.startswith("requests.")}
    search = routed.get("search", 0)
    by_id = sum(v for k, v in routed.items() if k.startswith("get_"))
    lists = sum(v for k, v in routed.items() if k.startswith("list_") or k in LIST_KINDS)
    total = delta.get("requests", 0)
    token_checks = routed.get("current_user", 0)
    return {
        "total": total,
        "search": search,
        "by_id": by_id,
        "list": lists,
        "other": total - search - by_id - lists,
        "token_checks": token_checks,
        "unserved": total - sum(routed.values()),
        "status_429": delta.get("responses.429", 0),
        "status_404": delta.get("responses.404", 0),
        "searches_by_context": {
            k.removeprefix("search."): v for k, v in delta.items() if k.startswith("search.")
        },
    }


def stream_truth(
    records_of: Callable[[str], list[dict[str, Any]]], streams: Iterable[str], start: date
) -> dict[str, tuple[set[str], set[str]]]:
    """(expected ids, soft-deleted ids) per tap stream that a complete sync from `start` holds.

    `records_of(type)` gives the emulator's records of a type: the in-process `Emulator.truth`
    or `/__admin/truth/<type>` over HTTP."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    since = datetime.combine(start, datetime.min.time(), UTC)
    for stream in streams:
        type_ = TAP_STREAMS.get(stream)
        if type_ is None:
            continue
        records = records_of(type_)
        expected = truth_ids(records, since if stream in SEARCHED_STREAMS else None)
        out[stream] = (expected, deleted_ids(records) & expected)
    return out


def http_records(base_url: str) -> Callable[[str], list[dict[str, Any]]]:
    """`records_of` for `stream_truth` from an emulator in another process."""
    return lambda type_: admin_get(base_url, f"/__admin/truth/{type_}")["data"]


def truth_ids(records: Iterable[Mapping[str, Any]], since: datetime | None) -> set[str]:
    """Ids of `records` (emulator resources) updated at or after `since` (all when None)."""
    if since is None:
        return {str(r["id"]) for r in records}
    floor = since.astimezone(UTC)
    out = set()
    for record in records:
        updated = (record.get("attributes") or {}).get("updatedAt")
        if updated and datetime.fromisoformat(updated.replace("Z", "+00:00")) >= floor:
            out.add(str(record["id"]))
    return out


def deleted_ids(records: Iterable[Mapping[str, Any]]) -> set[str]:
    """Ids of soft-deleted records: search hides them unless the body asks `includeDeleted`."""
    out = set()
    for record in records:
        attributes = record.get("attributes") or {}
        if attributes.get("deleted") or attributes.get("deletedAt") is not None:
            out.add(str(record["id"]))
    return out


def completeness(
    got: set[str], expected: set[str], deleted: set[str] | None = None
) -> dict[str, int | float]:
    """How many of the expected ids a client landed (extra ids are not penalised).

    `missing_deleted`: how many of the missing are soft-deleted records, i.e. deletions the
    client will never learn of."""
    found = len(got & expected)
    missing = expected - got
    return {
        "expected": len(expected),
        "found": found,
        "missing": len(missing),
        "missing_deleted": len(missing & (deleted or set())),
        "extra": len(got - expected),
        "ratio": round(found / len(expected), 4) if expected else 1.0,
    }


# ----------------------------------------------------------------------------- the run


@dataclass
class TapRun:
    """What one tap run did, as the emulator and the tap's stdout show it."""

    streams: list[str]
    exit_code: int | None
    finished: bool
    """Exited 0 within the time limit."""
    timed_out: bool
    wall_seconds: float
    records: dict[str, int] = field(default_factory=dict)
    distinct_ids: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    state_messages: int = 0
    requests: dict[str, Any] = field(default_factory=dict)
    emulator_stats: dict[str, int] = field(default_factory=dict)
    complete: dict[str, dict[str, int | float]] = field(default_factory=dict)
    unserved_requests: list[str] = field(default_factory=list)
    """Request lines the emulator answered 404 (no route), exactly as the tap sent them."""
    error: str | None = None
    """The tap's last CRITICAL / traceback line when it failed."""
    packages: list[str] = field(default_factory=list)
    as_published: bool = False
    """True: the tap's crash on a spent rate window left in (`singer_wrapper.py`)."""
    ids: dict[str, set[str]] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("ids")
        return out


def build_catalog(python: Path, streams: Iterable[str]) -> dict[str, Any]:
    """The tap's own catalog, with `streams` (and only those) selected, in the tap's order."""
    done = subprocess.run(
        [str(python), str(WRAPPER), "--offline-discover"],
        capture_output=True,
        text=True,
        check=True,
    )
    catalog = json.loads(done.stdout)
    wanted = set(streams)
    unknown = wanted - {s["tap_stream_id"] for s in catalog["streams"]}
    if unknown:
        raise ValueError(f"tap-kustomer has no streams {sorted(unknown)}")
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] in wanted
    return catalog


def _last_error(stderr: str) -> str | None:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    critical = [line for line in lines if "CRITICAL" in line]
    if critical:
        return critical[-1][:500]
    return lines[-1][:500] if lines else None


def run_tap(
    base_url: str,
    api_key: str,
    start: date,
    *,
    streams: Iterable[str] = DEFAULT_STREAMS,
    timeout_seconds: float = 900.0,
    work_dir: Path | None = None,
    python: str | None = None,
    as_published: bool = False,
) -> TapRun:
    """Sync `streams` from `start` (00:00 UTC) with the tap; counts from stdout and the emulator.

    The tap runs in its own session so a timeout ends it and nothing else (by its process
    group id). Records are counted as they stream past, never held, so a 70k-record sync
    costs no memory here beyond the id sets.
    """
    interpreter = ensure_singer_venv(python)
    chosen = [s for s in TAP_STREAMS if s in set(streams)]
    work = Path(work_dir or tempfile.mkdtemp(prefix="singer-tap-"))
    work.mkdir(parents=True, exist_ok=True)
    config = {
        "api_token": api_key,
        "start_date": f"{start.isoformat()}T00:00:00Z",
        "user_agent": USER_AGENT,  # the tap's main() reads this key unconditionally
    }
    (work / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (work / "catalog.json").write_text(
        json.dumps(build_catalog(interpreter, chosen)), encoding="utf-8"
    )
    log_path = work / "requests.jsonl"
    log_path.unlink(missing_ok=True)
    command = [
        str(interpreter),
        str(WRAPPER),
        *("--base-url", base_url, "--request-log", str(log_path)),
        *(["--as-published"] if as_published else []),
        "--",
        *("--config", str(work / "config.json"), "--catalog", str(work / "catalog.json")),
    ]
    before = admin_get(base_url, "/__admin/stats")
    records: Counter[str] = Counter()
    ids: dict[str, set[str]] = {s: set() for s in chosen}
    states = 0
    timed_out = threading.Event()
    began = time.perf_counter()
    with open(work / "stderr.log", "w", encoding="utf-8") as stderr:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True
        )

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout_seconds, kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                kind = message.get("type")
                if kind == "RECORD":
                    stream = message.get("stream", "?")
                    records[stream] += 1
                    ids.setdefault(stream, set()).add(str(message.get("record", {}).get("id")))
                elif kind == "STATE":
                    states += 1
            exit_code = proc.wait()
        finally:
            timer.cancel()
    wall = time.perf_counter() - began
    after = admin_get(base_url, "/__admin/stats")
    delta = stats_delta(before, after)
    lines = [json.loads(x) for x in log_path.read_text(encoding="utf-8").splitlines() if x]
    unserved = sorted(
        {f"{x['method']} {x['path']} -> {x['status']}" for x in lines if x["status"] == 404}
    )
    stderr_text = (work / "stderr.log").read_text(encoding="utf-8", errors="replace")
    ok = exit_code == 0 and not timed_out.is_set()
    return TapRun(
        streams=chosen,
        exit_code=None if timed_out.is_set() else exit_code,
        finished=ok,
        timed_out=timed_out.is_set(),
        wall_seconds=round(wall, 2),
        records={s: records.get(s, 0) for s in chosen},
        distinct_ids={s: len(ids.get(s, ())) for s in chosen},
        duplicates={s: records.get(s, 0) - len(ids.get(s, ())) for s in chosen},
        state_messages=states,
        as_published=as_published,
        requests=request_kinds(delta),
        emulator_stats=delta,
        unserved_requests=unserved,
        error=None if ok else _last_error(stderr_text) or "killed at the time limit",
        packages=installed_packages(),
        ids=ids,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install-only", action="store_true", help="make the venv and stop")
    parser.add_argument("--python", help="interpreter for the tap's venv (default: this one)")
    parser.add_argument("--base-url", help="a running emulator, e.g. http://127.0.0.1:8755")
    parser.add_argument("--key", default="emulator-key", help="an API key the emulator knows")
    parser.add_argument("--start-date", type=date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--streams", default=",".join(DEFAULT_STREAMS))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds")
    args = parser.parse_args()
    if args.install_only:
        print(ensure_singer_venv(args.python))
        print("\n".join(installed_packages()))
        return
    if not args.base_url or not args.start_date:
        parser.error("--base-url and --start-date are required to run the tap")
    streams = [s for s in args.streams.split(",") if s]
    run = run_tap(
        args.base_url,
        args.key,
        args.start_date,
        streams=streams,
        timeout_seconds=args.timeout,
        python=args.python,
    )
    truth = stream_truth(http_records(args.base_url), streams, args.start_date)
    run.complete = {s: completeness(run.ids.get(s, set()), *t) for s, t in truth.items()}
    print(json.dumps(run.as_dict(), indent=2))


if __name__ == "__main__":
    main()
