"""Each bad input fails the run in one sentence that says what to do, never shows the key,
spends no API budget when the input is wrong before any data is asked for, and loses no data:
a table loaded before keeps exactly its content and its Delta version.

Extends `test_bad_input.py` (a file as root, an unreachable bucket, settings errors) with what
only a server can say: a rejected or expired key, a page that is not the API's JSON, a 429
storm longer than the client may wait, a 5xx or a dropped connection that never stops.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable

from kustomer_assets.assets.raw import build_entity_asset
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import CONVERSATIONS
from kustomer_assets_tests.conftest import (
    TEST_KEY,
    Lake,
    assert_matches_truth,
    day_range,
    emulator_config,
    materialize_range,
    resources,
)
from kustomer_assets_tests.test_bad_input import _one_sentence
from kustomer_assets_tests.test_end_to_end import expected_table

ASSETS = [build_entity_asset(CONVERSATIONS)]
SEARCH = "/v1/customers/search"
WRONG_KEY = "wrong-key-4f1c-DO-NOT-PRINT"
EXPIRED_KEY = "expired-key-77aa-DO-NOT-PRINT"


def _budget_spent(stats: dict[str, int]) -> int:
    """Requests the emulator let through authentication (only those draw on the budget)."""
    return sum(v for k, v in stats.items() if k.startswith("requests."))


def _snapshot(lake: Lake) -> tuple[pl.DataFrame, int]:
    """The table's rows in a fixed order, and its Delta version."""
    uri = str(lake.root / "conversations")
    return lake.table("conversations").sort("id", "updated_at"), DeltaTable(uri).version()


def _fail(
    server: Emulator, lake: Lake, caplog: pytest.LogCaptureFixture, **client: object
) -> tuple[str, dict[str, Any], int]:
    """Run the same 3-day range again and return (the failure's description, its metadata,
    budget spent); asserts the run failed with a `dagster.Failure` and the table is intact."""
    before = _snapshot(lake)
    spent = _budget_spent(server.stats)
    first, last = day_range(3)
    base_url = client.pop("base_url", server.base_url)
    res = resources(base_url, lake, **client)  # type: ignore[arg-type]
    result = materialize_range(ASSETS, first, last, res, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data
    assert failure.user_failure_data is not None, failure.error
    description = failure.user_failure_data.description or ""
    metadata = {k: v.value for k, v in failure.user_failure_data.metadata.items()}
    after = _snapshot(lake)
    assert after[1] == before[1], "a failed run committed to the table"
    assert after[0].equals(before[0]), "a failed run changed the table"
    assert description.startswith("conversations: ")
    _one_sentence(description)
    for secret in (TEST_KEY, WRONG_KEY, EXPIRED_KEY):
        assert secret not in description and secret not in caplog.text
        assert secret not in str(failure.error.to_string())
    return description, metadata, _budget_spent(server.stats) - spent


@pytest.fixture
def loaded(lake: Lake, caplog: pytest.LogCaptureFixture) -> Iterator[Emulator]:
    """An emulator whose last 3 days were loaded cleanly into `lake` (the data to keep)."""
    caplog.set_level(logging.DEBUG)
    config = emulator_config(days=6, scale=0.5, expired_keys={EXPIRED_KEY})
    with Emulator(config) as server:
        first, last = day_range(3)
        assert materialize_range(ASSETS, first, last, resources(server.base_url, lake)).success
        expected = expected_table(server, CONVERSATIONS, first, last)
        assert expected.height > 50
        assert_matches_truth(lake.table("conversations"), expected)
        yield server


@pytest.mark.parametrize(
    ("key", "needles"),
    [
        (WRONG_KEY, ("rejected the API key", "create a new key", "KUSTOMER_API_KEY")),
        (EXPIRED_KEY, ("expired", "create a new key", "KUSTOMER_API_KEY")),
    ],
    ids=["wrong-key", "expired-key"],
)
def test_a_rejected_key(
    loaded: Emulator,
    lake: Lake,
    caplog: pytest.LogCaptureFixture,
    key: str,
    needles: tuple[str, ...],
) -> None:
    description, metadata, spent = _fail(loaded, lake, caplog, api_key=key)
    assert spent == 0, "a rejected key must not draw on the org's budget"
    assert all(needle in description for needle in needles), description
    assert metadata["error"] == "KustomerAuthError" and metadata["status"] == 401


@pytest.mark.parametrize(
    ("subdomain", "needle"),
    [("acme.kustomerapp.com", "single DNS label"), ("", "is not set")],
    ids=["a-host-not-a-label", "missing"],
)
def test_a_bad_subdomain_fails_before_any_request(
    loaded: Emulator, lake: Lake, caplog: pytest.LogCaptureFixture, subdomain: str, needle: str
) -> None:
    requests = loaded.stats.get("requests", 0)
    description, metadata, _ = _fail(loaded, lake, caplog, base_url=None, subdomain=subdomain)
    assert loaded.stats.get("requests", 0) == requests
    assert "KUSTOMER_SUBDOMAIN" in description and needle in description
    assert "KUSTOMER_BASE_URL" in description  # the other way to say where the API is
    assert metadata["error"] == "KustomerConfigError"


@contextmanager
def _searches_answer(server: Emulator, body: bytes, content_type: str) -> Iterator[None]:
    """Every search is handled as usual (budget, churn, stats) but answers 200 with `body`."""
    handle = server.handle

    def broken(method: str, target: str, headers: Any, raw: bytes) -> Any:
        response, delay = handle(method, target, headers, raw)
        if target.startswith(SEARCH) and response.status == 200:
            response.body, response.content_type = body, content_type
        return response, delay

    server.handle = broken  # type: ignore[method-assign]
    try:
        yield
    finally:
        server.handle = handle  # type: ignore[method-assign]


MALFORMED: dict[str, tuple[bytes, str]] = {
    "html-page": (b"<html><body><h1>Scheduled maintenance</h1></body></html>", "text/html"),
    "data-not-a-list": (json.dumps({"data": {"id": "x"}, "meta": {}}).encode(), "application/json"),
    "json-list": (b"[1, 2, 3]", "application/json"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_page_that_persists(
    loaded: Emulator, lake: Lake, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    with _searches_answer(loaded, *MALFORMED[kind]):
        description, metadata, _ = _fail(loaded, lake, caplog)
    assert f"POST {SEARCH}" in description
    assert "KUSTOMER_BASE_URL" in description and "retry" in description, description
    assert metadata["endpoint"] == SEARCH and metadata["status"] == 200


def _storm(server: Emulator, stop: threading.Event) -> None:
    """Another app spending the whole org budget, every window, for as long as the run."""
    while not stop.is_set():
        server.consume(org=server.config.org_rate_limit, search=server.config.search_rate_limit)
        stop.wait(0.005)


@pytest.mark.parametrize("source", ["injected-429s", "budget-spent-by-another-app"])
def test_a_429_storm_longer_than_the_client_may_wait(
    loaded: Emulator, lake: Lake, caplog: pytest.LogCaptureFixture, source: str
) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=_storm, args=(loaded, stop), daemon=True)
    if source == "injected-429s":
        loaded.set_faults(1.0, **{"429": 1})  # Retry-After: 1 on every answer
    else:
        worker.start()  # Retry-After: until the emulator's 60-second window ends
    try:
        description, metadata, _ = _fail(loaded, lake, caplog, max_rate_limit_wait_seconds=1.5)
    finally:
        stop.set()
        loaded.set_faults(0.0)
        if worker.is_alive():
            worker.join(timeout=5)
    assert "429" in description and SEARCH in description
    assert "max_rate_limit_wait_seconds" in description and "retry later" in description
    assert metadata["error"] == "KustomerRateLimitError" and metadata["status"] == 429


@pytest.mark.parametrize(
    ("fault", "needle"),
    [("500", "500"), ("503_html", "503"), ("drop", "disconnected")],
    ids=["500", "503-html", "dropped-connection"],
)
def test_a_server_failure_that_persists(
    loaded: Emulator, lake: Lake, caplog: pytest.LogCaptureFixture, fault: str, needle: str
) -> None:
    loaded.set_faults(1.0, **{fault: 1})
    try:
        description, metadata, _ = _fail(loaded, lake, caplog)
    finally:
        loaded.set_faults(0.0)
    assert f"POST {SEARCH}" in description and needle in description.lower(), description
    assert "retry" in description
    assert metadata["error"] == "KustomerServerError"
    # FAST_RETRIES allows 8 retries: the sentence says how many attempts were made.
    assert "9 attempts" in description


def test_each_sentence_is_short(
    loaded: Emulator, lake: Lake, caplog: pytest.LogCaptureFixture
) -> None:
    """A server's long error page is clipped: the sentence stays readable in the UI."""
    page = b"<html><body>" + b"Upstream error: connection reset by peer. " * 200 + b"</body></html>"
    handle: Callable[..., Any] = loaded.handle

    def failing(method: str, target: str, headers: Any, raw: bytes) -> Any:
        response, delay = handle(method, target, headers, raw)
        if target.startswith(SEARCH):
            response.status, response.body, response.content_type = 502, page, "text/html"
        return response, delay

    loaded.handle = failing  # type: ignore[method-assign]
    description, _, _ = _fail(loaded, lake, caplog)
    assert len(description) < 700, len(description)
