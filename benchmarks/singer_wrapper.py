"""Launch the Singer `tap-kustomer` 1.1.0 against a loopback Kustomer emulator.

Runs inside the tap's own venv (`benchmarks/.venv-singer/`, made by `singer_tap.py`), never in
the project's: the tap pins old libraries (singer-python 5.8.1, jsonschema 2.6.0, backoff 1.8.0)
that must not meet ours. Stdlib plus the tap's own packages only, for the same reason.

The tap hard-codes `https://api.kustomerapp.com/v1` in `KustomerClient.__init__` and has no
setting for the host, so the only way to point it at the emulator without editing its code is
to let that constructor run and then replace `base_url`. One operation of the tap is mended
(`patch_reset_arithmetic`: it crashed on the first spent rate window; `--as-published` keeps
the crash); every other line runs as published: this module imports and patches, it copies
nothing. Two more patches wrap
`requests.Session.request`, the one call all the tap's HTTP goes through:

- a guard that refuses any non-loopback host, so a missed redirect fails loudly instead of
  sending the benchmark key to the real Kustomer (this machine has no route there anyway);
- a log of every request line (method, path with query, status, seconds, the search's
  `queryContext`) as JSON lines, so a report can name exactly what the tap asked for that the
  emulator does not serve. The emulator's own counters stay the source of request counts.

    python singer_wrapper.py --base-url http://127.0.0.1:PORT --request-log FILE \
        -- --config CONFIG.json --catalog CATALOG.json
    python singer_wrapper.py --offline-discover > catalog.json

`--offline-discover` calls the tap's `discover()` directly: the tap's own `--discover` first
checks the token over the network, which a catalog (built from the schema files it ships)
does not need.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
from typing import Any, TextIO
from urllib.parse import urlsplit

LOOPBACK_NAMES = {"localhost"}


def is_loopback(url: str) -> bool:
    """Whether `url` points at this machine (127.0.0.0/8, ::1 or localhost)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def query_context(data: Any) -> str | None:
    """The search body's `queryContext`, for the log (the tap sends bodies as JSON strings)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    if not isinstance(data, str):
        return None
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    return parsed.get("queryContext") if isinstance(parsed, dict) else None


def patch_base_url(base_url: str) -> None:
    """Point every `KustomerClient` the tap builds at `base_url` (the emulator's root)."""
    import tap_kustomer.client as tap_client

    original_init = tap_client.KustomerClient.__init__
    api_root = f"{base_url.rstrip('/')}/{tap_client.API_VERSION}"

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.base_url = api_root

    tap_client.KustomerClient.__init__ = init  # type: ignore[method-assign]


def patch_reset_arithmetic() -> None:
    """Let the tap's rate-limit wait run as its comment says ("wait until limit reset").

    When a budget is spent (`x-ratelimit-remaining` <= 0) the tap computes
    `reset_in - now` with `reset_in` the header's text and `now` a float, so the published
    tap dies on the first spent window (`unsupported operand type(s) for -: 'str' and
    'float'`) with its sync partial: how early depends only on when it first spends a window
    (76-751 s across runs here), which made its wall clock a lottery. The only `datetime` the
    tap's client module uses is that `now`; it is given a float that subtracts from numeric
    text, so the line sleeps until the reset and the tap retries, as intended. Nothing else
    of the tap changes; `--as-published` leaves it out."""
    import tap_kustomer.client as tap_client

    real = tap_client.datetime

    class Seconds(float):
        def __rsub__(self, other: object) -> float:
            return float(other) - float(self)  # type: ignore[arg-type]

    class Moment:
        def __init__(self, moment: Any) -> None:
            self.moment = moment

        def timestamp(self) -> float:
            return Seconds(self.moment.timestamp())

    class Clock:
        @staticmethod
        def now(tz: Any = None) -> Moment:
            return Moment(real.now(tz))

    tap_client.datetime = Clock  # type: ignore[assignment, misc]


def patch_requests(log: TextIO | None) -> None:
    """Refuse non-loopback hosts and log each request line the tap sends."""
    import requests

    original_request = requests.Session.request

    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(url):
            raise RuntimeError(f"singer_wrapper: refusing non-loopback request to {url}")
        began = time.perf_counter()
        status: int | None = None
        path = url
        try:
            response = original_request(self, method, url, *args, **kwargs)
            status = response.status_code
            path = response.request.path_url
            return response
        finally:
            if log is not None:
                line = {
                    "method": method.upper(),
                    "path": path,
                    "status": status,
                    "seconds": round(time.perf_counter() - began, 4),
                    "query_context": query_context(kwargs.get("data")),
                }
                log.write(json.dumps(line) + "\n")
                log.flush()  # a killed (timed-out) tap still leaves its log

    requests.Session.request = request  # type: ignore[method-assign, assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="emulator root, e.g. http://127.0.0.1:8755")
    parser.add_argument("--request-log", help="append one JSON line per request here")
    parser.add_argument("--offline-discover", action="store_true", help="print the catalog")
    parser.add_argument(
        "--as-published",
        action="store_true",
        help="leave the tap's crash on a spent rate window (see patch_reset_arithmetic)",
    )
    parser.add_argument("tap_args", nargs=argparse.REMAINDER, help="-- then the tap's arguments")
    args = parser.parse_args()
    if args.offline_discover:
        from tap_kustomer.discover import discover

        json.dump(discover().to_dict(), sys.stdout, indent=2)
        return
    if not args.base_url or not is_loopback(args.base_url):
        parser.error("--base-url must be a loopback URL (the emulator)")
    tap_args = args.tap_args[1:] if args.tap_args[:1] == ["--"] else args.tap_args
    log = open(args.request_log, "a", encoding="utf-8") if args.request_log else None  # noqa: SIM115
    try:
        patch_base_url(args.base_url)
        patch_requests(log)
        if not args.as_published:
            patch_reset_arithmetic()
        import tap_kustomer

        sys.argv = ["tap-kustomer", *tap_args]
        tap_kustomer.main()
    finally:
        if log is not None:
            log.close()


if __name__ == "__main__":
    main()
