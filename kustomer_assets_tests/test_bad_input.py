"""Bad input fails in one sentence that names what to fix, before any API budget is spent."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.emulator import Emulator
from kustomer_assets_tests.conftest import (
    TEST_KEY,
    Lake,
    day_range,
    materialize_command,
    materialize_range,
    resources,
)

CONVERSATIONS_ASSET = next(a for a in entity_assets if a.key.path[-1] == "conversations")


def _failure(emulator: Emulator, lake: Lake, **settings: object) -> tuple[str, dict, int]:
    """(the failure's description, its metadata, API requests spent) of a one-day run."""
    first, last = day_range(1)
    before = emulator.stats.get("requests", 0)
    base_url = str(settings.pop("base_url", emulator.base_url))
    res = resources(base_url, lake, **settings)
    result = materialize_range([CONVERSATIONS_ASSET], first, last, res, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data
    assert failure.user_failure_data is not None, "expected a dagster.Failure"
    metadata = {k: v.value for k, v in failure.user_failure_data.metadata.items()}
    return (
        failure.user_failure_data.description,
        metadata,
        emulator.stats.get("requests", 0) - before,
    )


def _one_sentence(text: str) -> None:
    assert text.endswith("."), text
    assert ". " not in text.rstrip("."), f"more than one sentence: {text}"
    assert TEST_KEY not in text


def test_a_file_as_delta_root(emulator: Emulator, tmp_path: Path) -> None:
    root = tmp_path / "not-a-folder"
    root.write_text("oops")
    description, metadata, spent = _failure(emulator, Lake(root))
    assert spent == 0
    assert description.startswith("conversations: ")
    assert "KUSTOMER_DELTA_ROOT" in description and str(root) in description
    assert metadata["error"] == "StorageRootError"
    _one_sentence(description)


def test_a_delta_root_below_a_file(emulator: Emulator, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    description, _, spent = _failure(emulator, Lake(blocker / "delta"))
    assert spent == 0 and "KUSTOMER_DELTA_ROOT" in description
    _one_sentence(description)


def test_an_unreachable_bucket(emulator: Emulator, tmp_path: Path) -> None:
    first, last = day_range(1)
    before = emulator.stats.get("requests", 0)
    res = resources(emulator.base_url, Lake(tmp_path))
    from kustomer_assets.lake.resource import DeltaLakeResource

    res["lake"] = DeltaLakeResource(
        root="s3://kustomer-bucket/tables",
        storage_options={
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "bucket-secret-DO-NOT-PRINT",
            "AWS_REGION": "us-east-1",
        },
    )
    result = materialize_range([CONVERSATIONS_ASSET], first, last, res, raise_on_error=False)
    assert not result.success
    description = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert description is not None
    text = description.description
    assert "KUSTOMER_DELTA_ROOT" in text and "s3://kustomer-bucket/tables" in text
    assert "bucket-secret-DO-NOT-PRINT" not in text
    assert emulator.stats.get("requests", 0) == before


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"api_key": ""}, "KUSTOMER_API_KEY is empty"),
        ({"base_url": "http://kustomer.example.com"}, "KUSTOMER_BASE_URL"),
    ],
)
def test_settings_errors_are_the_failure_description(
    emulator: Emulator, lake: Lake, settings: dict, needle: str
) -> None:
    description, metadata, spent = _failure(emulator, lake, **settings)
    assert spent == 0
    assert description.startswith("conversations: ") and needle in description
    assert metadata["error"] == "KustomerConfigError"
    _one_sentence(description)


def test_the_command_line_shows_the_sentence(emulator: Emulator, tmp_path: Path) -> None:
    """`dagster asset materialize` with a file as root: the sentence, not a raw traceback."""
    root = tmp_path / "root-file"
    root.write_text("")
    (tmp_path / "home").mkdir()
    first, last = day_range(1)
    env = {
        **os.environ,
        "KUSTOMER_BASE_URL": emulator.base_url,
        "KUSTOMER_API_KEY": TEST_KEY,
        "KUSTOMER_DELTA_ROOT": str(root),
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    command = materialize_command("conversations", first, last)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "KUSTOMER_DELTA_ROOT" in output
    assert "FileExistsError" not in output and "NotADirectoryError" not in output
    assert TEST_KEY not in output
    assert emulator.stats.get("requests", 0) == 0
