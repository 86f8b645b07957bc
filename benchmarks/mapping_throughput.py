"""Records per minute for mapping Kustomer resources to frames, alone and with the Delta write.

Compares the row-by-row reference mapping (`RecordMapper._frame_rowwise`, the implementation
before the columnar one) with `RecordMapper.frame`, on conversations and messages from the
emulator's dataset. Records are fed in batches of 5,000 as `assets/load.py` stages them, and
written through `DeltaStore.replace_days(...)` + `commit()` into a temporary folder, as one
window. To reach hundreds of thousands of records from a dataset of tens of thousands, each
pass over the dataset gives the records new ids, batch by batch, so no more than one batch
exists beyond the source.

`--source json` (the default) keeps the source as JSON pages of 500 records and decodes one
page at a time, as the loader gets them from the API; decoding is not timed (it belongs to
extraction). `--source dicts` feeds shallow copies of the dataset's own records instead, whose
values are scattered over the whole dataset's memory: a worst case for CPU caches.

Times are wall and CPU seconds (all threads) inside mapping and writing only; on a shared
machine the CPU figure is the steadier one. Each (implementation, entity, step) runs in a
fresh process, so the peak RSS it reports (`resource.getrusage`) is that run's; generating
the dataset peaks first, which `source RSS MB` (the peak before the first batch) shows, so
the mapping's or writing's own memory is what the peak adds to it.

    .venv/bin/python benchmarks/mapping_throughput.py [--conversations 200000]
        [--messages 500000] [--scale 5] [--implementations old,new] [--source json|dicts]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "mapping_throughput.json"

BATCH_RECORDS = 5_000
"""As `kustomer_assets.assets.load.BATCH_RECORDS`."""

ENTITIES = {"conversations": "conversation", "messages": "message"}
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
"""Fixed, so that every run maps the same dataset."""


PAGE_RECORDS = 500
"""The search API's largest page."""


def batches(pages: list[Any], total: int) -> Iterator[list[dict[str, Any]]]:
    """`total` records from `pages` (JSON texts, or lists of the dataset's dicts), in batches;
    pass k over the source rewrites the first four hex digits of each id to k (the other 20
    are unique already), so every id is distinct."""
    batch: list[dict[str, Any]] = []
    produced = 0
    lap = 0
    while produced < total:
        for page in pages:
            records = json.loads(page) if isinstance(page, str) else [dict(r) for r in page]
            for record in records:
                record["id"] = f"{lap:04x}{record['id'][4:]}"
                batch.append(record)
                produced += 1
                if len(batch) == BATCH_RECORDS or produced == total:
                    yield batch
                    batch = []
                if produced == total:
                    return
        lap += 1


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_child(implementation: str, entity: str, step: str, count: int, args: Any) -> dict:
    """One measurement, in this process: map (and write) `count` records of `entity`."""
    from kustomer_assets.emulator import EmulatorConfig
    from kustomer_assets.emulator.dataset import generate_dataset
    from kustomer_assets.entities import ENTITIES_BY_NAME
    from kustomer_assets.lake import DeltaStore

    spec = ENTITIES_BY_NAME[entity]
    config = EmulatorConfig(seed=args.seed, days=args.days, scale=args.scale, now=NOW)
    dataset = generate_dataset(config)
    source = dataset.all(ENTITIES[entity])
    del dataset
    days = sorted({r["attributes"]["updatedAt"][:10] for r in source})
    first_day = date.fromisoformat(days[0])
    end_day = date.fromisoformat(days[-1]) + timedelta(days=1)
    pages: list[Any] = [source[i : i + PAGE_RECORDS] for i in range(0, len(source), PAGE_RECORDS)]
    if args.source == "json":
        pages = [json.dumps(page) for page in pages]
        del source
    # The dataset is millions of objects a loading process never holds (it sees one page at a
    # time); left to the cyclic GC, every collection would walk them all and dwarf the mapping.
    gc.collect()
    gc.freeze()
    source_rss = peak_rss_mb()
    mapper = spec.mapper
    frame = mapper._frame_rowwise if implementation == "old" else mapper.frame
    rows = 0
    clock = Clock()
    with tempfile.TemporaryDirectory() as folder:
        if step == "map":
            for batch in batches(pages, count):
                with clock.mapping():
                    rows += frame(batch).height
        else:
            store = DeltaStore(folder)
            schema = mapper.base_schema
            with clock.writing():
                replacement = store.replace_days(entity, first_day, end_day, schema)
            with replacement:
                for batch in batches(pages, count):
                    with clock.mapping():
                        mapped = frame(batch)
                    rows += mapped.height
                    with clock.writing():
                        replacement.add(mapped)
                with clock.writing():
                    summary = replacement.commit()
            if summary.rows != count:
                raise SystemExit(f"wrote {summary.rows} rows of {count}")
    seconds = clock.map_seconds + clock.write_seconds
    cpu_seconds = clock.map_cpu + clock.write_cpu
    return {
        "implementation": implementation,
        "entity": entity,
        "step": step,
        "source": args.source,
        "records": rows,
        "source_records": sum(len(json.loads(p)) if isinstance(p, str) else len(p) for p in pages),
        "seconds": round(seconds, 2),
        "records_per_minute": round(rows / seconds * 60),
        "cpu_seconds": round(cpu_seconds, 2),
        "records_per_cpu_minute": round(rows / cpu_seconds * 60),
        "map_seconds": round(clock.map_seconds, 2),
        "write_seconds": round(clock.write_seconds, 2),
        "peak_rss_mb": round(peak_rss_mb()),
        "source_rss_mb": round(source_rss),
    }


class Clock:
    """Wall and CPU time (every thread: the Delta writer runs in Rust threads) spent mapping
    and writing, leaving out the decoding of source pages between them."""

    def __init__(self) -> None:
        self.map_seconds = self.write_seconds = self.map_cpu = self.write_cpu = 0.0

    @contextmanager
    def mapping(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.map_seconds += time.perf_counter() - wall
        self.map_cpu += time.process_time() - cpu

    @contextmanager
    def writing(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.write_seconds += time.perf_counter() - wall
        self.write_cpu += time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=200_000)
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scale", type=float, default=5.0)
    parser.add_argument("--implementations", default="old,new")
    parser.add_argument("--source", choices=("json", "dicts"), default="json")
    parser.add_argument("--steps", default="map,map+write")
    parser.add_argument("--child", nargs=3, metavar=("IMPLEMENTATION", "ENTITY", "STEP"))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    counts = {"conversations": args.conversations, "messages": args.messages}
    if args.child:
        implementation, entity, step = args.child
        print(json.dumps(run_child(implementation, entity, step, counts[entity], args)))
        return
    forwarded = [
        f"--conversations={args.conversations}",
        f"--messages={args.messages}",
        f"--seed={args.seed}",
        f"--days={args.days}",
        f"--scale={args.scale}",
        f"--source={args.source}",
    ]
    results = []
    print(
        f"{'impl':4} {'entity':13} {'step':9} {'records':>8} {'seconds':>8} {'map s':>6} "
        f"{'write s':>7} {'records/min':>12} {'CPU s':>6} {'per CPU-min':>12} "
        f"{'peak RSS MB':>11} {'source RSS MB':>13}"
    )
    for entity in counts:
        for step in args.steps.split(","):
            for implementation in args.implementations.split(","):
                out = subprocess.run(
                    [sys.executable, __file__, *forwarded, "--child", implementation, entity, step],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                result = json.loads(out.strip().splitlines()[-1])
                results.append(result)
                print(
                    f"{implementation:4} {entity:13} {step:9} {result['records']:>8} "
                    f"{result['seconds']:>8} {result['map_seconds']:>6} "
                    f"{result['write_seconds']:>7} {result['records_per_minute']:>12,} "
                    f"{result['cpu_seconds']:>6} {result['records_per_cpu_minute']:>12,} "
                    f"{result['peak_rss_mb']:>11} {result['source_rss_mb']:>13}",
                    flush=True,
                )
    print(json.dumps(results))
    output = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "counts": counts,
        "source": args.source,
        "dataset": {"seed": args.seed, "days": args.days, "scale": args.scale},
        "runs": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
