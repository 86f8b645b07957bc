"""Peak RSS of mapping and writing one window as the history in it grows 1x, 4x, 16x.

Issue 9 asks that a sync's memory stay flat whatever the size of the history: the loader maps
and stages `BATCH_RECORDS` at a time (`assets/load.py`) and the lake's commit streams the
staged files (`lake/partitions.py`), so neither should hold the window. This measures it on
the worst case for that claim: the whole history in ONE window (what a snapshot entity, or a
spike of updates on one day, gives), written by the real writer
(`DeltaStore.replace_days(...)`, `add` per batch, one `commit`).

The source is the emulator's dataset (`--scale`, `--days`) as JSON pages of 500 records, made
once by the parent and written to a file, one page per line. Each size runs in a fresh child
process that reads that file one page at a time (as a loader gets pages from the API), so the
child never holds the dataset: its peak RSS (`getrusage(RUSAGE_SELF).ru_maxrss`) is imports +
one page + one batch + whatever the writer keeps. To reach N records from a dataset of tens
of thousands, pass k over the file rewrites the first four hex digits of each id to k, so every
record is a new id (the same days: rows per day grow with N).

Reported per size: records, peak RSS, the RSS after imports before the first page (`base`),
what the run added to it (`peak - base`), the peak before the commit (`staged`: mapping and
staging alone), seconds and records/min; then the growth of peak RSS from 1x to 16x in % and
the slope in MB per million records (least squares over the sizes). Windows up to
`SORT_IN_MEMORY_ROWS` (200k) rows are sorted in memory at commit, larger ones streamed, so
the default 1x (62,500) and 4x / 16x sizes take the two paths, as windows of those sizes do.

    .venv/bin/python benchmarks/memory_growth.py [--entity conversations] [--base 62500]
        [--factors 1,4,16] [--output benchmarks/results/memory_growth.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "memory_growth.json"
ENTITY_TYPES = {"conversations": "conversation", "messages": "message"}
PAGE_RECORDS = 500
"""The search API's largest page: what one response carries."""
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
"""Fixed, so that every run maps the same dataset."""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ----------------------------------------------------------------------------- parent


def write_pages(entity: str, scale: float, days: int, seed: int, path: Path) -> dict[str, Any]:
    """The emulator's records of `entity` as JSON pages, one per line; returns their span."""
    from kustomer_assets.emulator import EmulatorConfig
    from kustomer_assets.emulator.dataset import generate_dataset

    dataset = generate_dataset(EmulatorConfig(seed=seed, days=days, scale=scale, now=NOW))
    records = dataset.all(ENTITY_TYPES[entity])
    updated = sorted(r["attributes"]["updatedAt"][:10] for r in records)
    with path.open("w", encoding="utf-8") as out:
        for i in range(0, len(records), PAGE_RECORDS):
            out.write(json.dumps(records[i : i + PAGE_RECORDS]) + "\n")
    return {"records": len(records), "first_day": updated[0], "last_day": updated[-1]}


def slope_mb_per_million(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of peak MB over records, per million records."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    cov = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return cov / var * 1_000_000


def run_sizes(args: argparse.Namespace) -> dict[str, Any]:
    factors = [int(f) for f in args.factors.split(",") if f]
    runs: list[dict[str, Any]] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memory-growth-") as folder:
        pages = Path(folder) / "pages.jsonl"
        source = write_pages(args.entity, args.scale, args.days, args.seed, pages)
        print(
            f"source: {source['records']} {args.entity} over {source['first_day']}.."
            f"{source['last_day']} as {PAGE_RECORDS}-record pages "
            f"({time.perf_counter() - began:.0f} s)",
            flush=True,
        )
        header = (
            f"{'size':>5} {'records':>10} {'peak MB':>8} {'base MB':>8} {'added MB':>9} "
            f"{'staged MB':>9} {'seconds':>8} {'records/min':>12}"
        )
        print(header + "\n" + "-" * len(header))
        for factor in factors:
            count = args.base * factor
            command = [
                sys.executable,
                __file__,
                *("--child", str(count), "--pages", str(pages), "--entity", args.entity),
                *("--first-day", source["first_day"], "--last-day", source["last_day"]),
            ]
            env = {**os.environ, "KUSTOMER_STAGING_DIR": str(Path(folder) / "staging")}
            done = subprocess.run(
                command, check=True, capture_output=True, text=True, env=env
            ).stdout
            result = json.loads(done.strip().splitlines()[-1])
            result["factor"] = factor
            runs.append(result)
            print(
                f"{factor:>4}x {result['records']:>10,} {result['peak_rss_mb']:>8.0f} "
                f"{result['base_rss_mb']:>8.0f} {result['added_mb']:>9.0f} "
                f"{result['staged_rss_mb']:>9.0f} "
                f"{result['seconds']:>8.1f} {result['records_per_minute']:>12,}",
                flush=True,
            )
    first, last = runs[0], runs[-1]
    growth = (last["peak_rss_mb"] / first["peak_rss_mb"] - 1) * 100
    added_growth = (last["added_mb"] / first["added_mb"] - 1) * 100 if first["added_mb"] else None
    slope = slope_mb_per_million([(r["records"], r["peak_rss_mb"]) for r in runs])
    print(
        f"peak RSS {first['factor']}x -> {last['factor']}x: {growth:+.1f}% "
        f"(what the run adds to the imports: "
        f"{'n/a' if added_growth is None else f'{added_growth:+.1f}%'}); "
        f"slope {slope:.1f} MB per million records"
    )
    return {
        "entity": args.entity,
        "layout": "the whole history in one window (one replace_days, one commit)",
        "batch_records": runs[0]["batch_records"],
        "source": source,
        "runs": runs,
        "growth_pct_first_to_last": round(growth, 1),
        "added_growth_pct_first_to_last": None if added_growth is None else round(added_growth, 1),
        "slope_mb_per_million_records": round(slope, 1),
        "seconds_in_all": round(time.perf_counter() - began, 1),
    }


# ----------------------------------------------------------------------------- child


def pages_of(path: Path, total: int) -> Iterator[list[dict[str, Any]]]:
    """`total` records from the page file, one page at a time; lap k rewrites ids to k."""
    produced = 0
    lap = 0
    while produced < total:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                page = json.loads(line)[: total - produced]
                for record in page:
                    record["id"] = f"{lap:04x}{record['id'][4:]}"
                produced += len(page)
                yield page
                if produced >= total:
                    return
        lap += 1


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """Map and write `args.child` records as `assets/load.py` stages a window: same batch size,
    same `mapper.frame`, same `replace_days` / `add` / `commit`."""
    from kustomer_assets.assets.load import BATCH_RECORDS
    from kustomer_assets.entities import ENTITIES_BY_NAME
    from kustomer_assets.lake import DeltaStore

    spec = ENTITIES_BY_NAME[args.entity]
    first_day = date.fromisoformat(args.first_day)
    end_day = date.fromisoformat(args.last_day) + timedelta(days=1)
    base_rss = peak_rss_mb()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memory-growth-lake-") as folder:
        store = DeltaStore(folder)
        batch: list[dict[str, Any]] = []
        with store.replace_days(spec.name, first_day, end_day, spec.mapper.base_schema) as window:
            for page in pages_of(Path(args.pages), args.child):
                batch.extend(page)
                if len(batch) >= BATCH_RECORDS:
                    window.add(spec.mapper.frame(batch))
                    batch.clear()
            if batch:
                window.add(spec.mapper.frame(batch))
                batch.clear()
            staged_rss = peak_rss_mb()
            summary = window.commit()
    seconds = time.perf_counter() - began
    if summary.rows != args.child:
        raise SystemExit(f"wrote {summary.rows} rows of {args.child}")
    peak = peak_rss_mb()
    return {
        "records": summary.rows,
        "batch_records": BATCH_RECORDS,
        "peak_rss_mb": round(peak, 1),
        "base_rss_mb": round(base_rss, 1),
        "added_mb": round(peak - base_rss, 1),
        "staged_rss_mb": round(staged_rss, 1),
        "seconds": round(seconds, 2),
        "records_per_minute": round(summary.rows / seconds * 60),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entity", choices=sorted(ENTITY_TYPES), default="conversations")
    parser.add_argument("--base", type=int, default=62_500, help="records at 1x")
    parser.add_argument("--factors", default="1,4,16")
    parser.add_argument("--scale", type=float, default=5.0, help="emulator scale of the source")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pages", help=argparse.SUPPRESS)
    parser.add_argument("--first-day", help=argparse.SUPPRESS)
    parser.add_argument("--last-day", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_child(args)))
        return
    result = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), **run_sizes(args)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
