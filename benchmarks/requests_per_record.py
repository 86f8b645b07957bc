"""How many API requests a 30-day conversation + message extraction costs, against a baseline.

Baseline: what the open-source taps do — one query per day at pageSize 100. Ours: 7-day
windows at the maximum page size (500) with narrowing only where the API stops paging.
Both run in the same process against the same emulator, so the figures compare directly.

    .venv/bin/python benchmarks/requests_per_record.py [--days 30] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kustomer_assets.emulator import Emulator, EmulatorConfig
from kustomer_assets.kustomer import KustomerClient, KustomerSettings

KEY = "benchmark-key"
RESULTS = Path(__file__).resolve().parent / "results" / "requests_per_record.json"


def extract(base_url: str, context: str, days: int, window_days: int, page_size: int) -> dict:
    settings = KustomerSettings(
        api_key=KEY,
        base_url=base_url,
        search_page_size=page_size,
        org_requests_per_minute=100_000,
        search_requests_per_minute=100_000,
    )
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(1)
    start = end - timedelta(days=days)
    records = 0
    began = time.perf_counter()
    with KustomerClient(settings) as client:
        cursor = start
        while cursor < end:
            stop = min(cursor + timedelta(days=window_days), end)
            for page in client.search_window(context, cursor, stop):
                records += len(page)
            cursor = stop
        stats = client.stats.as_dict()
    return {
        "records": records,
        "requests": stats["requests"],
        "records_per_request": round(records / max(stats["requests"], 1), 1),
        "seconds": round(time.perf_counter() - began, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    results: dict[str, dict] = {}
    config = EmulatorConfig(
        seed=3,
        days=args.days,
        scale=args.scale,
        api_keys={KEY: None},
        org_rate_limit=100_000,
        search_rate_limit=100_000,
    )
    with Emulator(config) as server:
        print(f"{'entity':<14}{'variant':<28}{'records':>9}{'requests':>10}{'rec/req':>9}{'s':>7}")
        for context in ("conversation", "message"):
            rows = {
                "baseline: 1 day x 100": extract(server.base_url, context, args.days, 1, 100),
                "ours: 7 days x 500": extract(server.base_url, context, args.days, 7, 500),
            }
            for name, row in rows.items():
                print(
                    f"{context:<14}{name:<28}{row['records']:>9}{row['requests']:>10}"
                    f"{row['records_per_request']:>9}{row['seconds']:>7}"
                )
            base, ours = rows.values()
            assert base["records"] == ours["records"], "both variants must see the same records"
            print(f"{'':<14}-> {base['requests'] / ours['requests']:.1f}x fewer requests\n")
            results[context] = {
                "baseline": base,
                "ours": ours,
                "fewer_requests": round(base["requests"] / ours["requests"], 2),
            }
    output = {"days": args.days, "scale": args.scale, "contexts": results}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
