"""Running one demo step: `dagster asset materialize` as a user would type it, its output.

The runs' full event logs go to `<root>/logs/`; the terminal gets one line per window (read
back from the run's log as it is written) and a line per run with its checks' verdicts.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

from kustomer_assets.assets.progress import WINDOW_LINE, format_duration

from .output import _shown, say
from .verdict import run_verdict
from .world import DemoPaths

DAGSTER_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} - dagster - (?P<level>[A-Z]+) - \S+ - "
    r"(?P<run>[0-9a-f]{8}-[0-9a-f-]{27}) - (?:(?P<pid>\d+) - )?(?P<step>\S+) - (?P<message>.*)$"
)
"""A line of Dagster's console log: our own log calls carry no pid, Dagster's events do."""


def dagster_executable() -> str:
    candidate = Path(sys.executable).with_name("dagster")
    return str(candidate) if candidate.exists() else "dagster"


def materialize_command(assets: list[str], days: tuple[str, str] | None) -> list[str]:
    """`dagster asset materialize`, as a user would type it; `days` makes it a range run."""
    command = [
        dagster_executable(),
        "asset",
        "materialize",
        "-m",
        "kustomer_assets.definitions",
        "--select",
        ",".join(assets),
    ]
    if days:
        command += ["--partition-range", f"{days[0]}...{days[1]}"]
    return command


@dataclass
class StepOutcome:
    run_id: str | None
    returncode: int


def run_step(command: list[str], env: dict[str, str], paths: DemoPaths, log_path: Path) -> None:
    """Run one `dagster asset materialize` with its output in `log_path`, print our lines as
    they arrive, then the run's verdict; a failed run ends the demo with its errors."""
    say(f"  $ {_short_command(command)}")
    say(f"  full log: {_shown(log_path)}")
    step_started = time.monotonic()
    with log_path.open("w") as log_file:
        log_file.write(f"$ {shlex.join(command)}\n")
        log_file.flush()
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    outcome = StepOutcome(run_id=None, returncode=0)
    try:
        with log_path.open() as reader:
            for line in follow(reader, process):
                _show_line(line, outcome)
    finally:
        # Ctrl-C reaches the run too: give it the time to record its end before leaving.
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    outcome.returncode = process.returncode
    seconds = time.monotonic() - step_started
    verdict = run_verdict(paths.dagster_home, outcome.run_id) if outcome.run_id else None
    lines = verdict.lines(seconds) if verdict else [f"run ended ({format_duration(seconds)})"]
    if outcome.returncode == 0:
        for line in lines:
            say(f"  {line}")
        return
    say(f"  FAILED (exit {outcome.returncode}): {lines[0] if verdict else 'no run started'}")
    for line in lines[1:]:
        say(f"  {line}")
    if verdict is None:
        say("    last lines of the log:")
        for tail in log_path.read_text().splitlines()[-15:]:
            say(f"    {tail}")
    raise SystemExit(f"The demo stopped: see {_shown(log_path)} for the whole run log.")


def follow(reader: TextIO, process: subprocess.Popen[Any]) -> Iterator[str]:
    """Complete lines of a log file while the process writing it runs, then the rest."""
    pending = ""
    while True:
        running = process.poll() is None
        chunk = reader.read()
        if chunk:
            pending += chunk
            *lines, pending = pending.split("\n")
            yield from lines
        elif not running:
            break
        else:
            time.sleep(0.2)
    if pending:
        yield pending


def _show_line(line: str, outcome: StepOutcome) -> None:
    """Our INFO/WARNING lines (compacted when a window line), and Dagster's errors."""
    match = DAGSTER_LINE.match(line)
    if match is None:
        return  # Dagster's DEBUG continuation lines, tracebacks, warnings: in the log file
    outcome.run_id = outcome.run_id or match["run"]
    level, step, message = match["level"], match["step"], match["message"]
    if match["pid"] is not None:  # a Dagster event: only failures belong on the terminal
        if level in ("ERROR", "CRITICAL"):
            say(f"  error: {step}: {message}")
        return
    if level == "DEBUG":
        return
    window = WINDOW_LINE.match(message)
    if window is not None:
        say(_window_row(window))
        if window["done"] == window["total"]:
            say("  every window is loaded; the run's checks follow")
        return
    text = message if message.startswith(step) else f"{step}: {message}"
    prefix = "" if level == "INFO" else f"{level.lower()}: "
    say(f"  {prefix}{text}")


def _window_row(window: re.Match[str]) -> str:
    days = window["days"]
    if "/" in days:
        first, end = (date.fromisoformat(day) for day in days.split("/"))
        days = f"{first:%m-%d}..{end - timedelta(days=1):%m-%d}"
    done = window["done"] == window["total"]
    eta = "" if done or not window["eta"] else f", ETA {window['eta']}"
    rows, requests = window["rows"], window["requests"]
    return (
        f"  {window['table']:<18} {window['number']:>2}/{window['windows']:<2} {days:<12} "
        f"{rows:>7} {'row ' if rows == '1' else 'rows'} {requests:>5} "
        f"{'request ' if requests == '1' else 'requests'}   run {window['percent']:>3}%{eta}"
    )


def _short_command(command: list[str]) -> str:
    """The command with the executable's folder dropped (it is the venv's `dagster`)."""
    return shlex.join([Path(command[0]).name, *command[1:]])
