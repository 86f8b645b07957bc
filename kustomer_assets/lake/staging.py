"""Private local folders for staged batches, and the sweep that removes those of dead runs.

Staged batches hold whatever the rows hold (message text, names, emails), and a run killed with
SIGKILL never gets to delete them. So every run stages in its own folder, readable by its user
only, under one parent (`$KUSTOMER_STAGING_DIR`, else `<system temp>/kustomer-assets-staging`),
named after the process that owns it: `<pid>-<start>-<host>-<random>`, where `start` is the
process's start time (Linux clock ticks since boot; 0 where unknown) and `host` a hash of the
host name. Whenever a writer starts, it removes the folders whose owner is gone:

* same host, and no process with that pid, or a zombie, or a process with that pid but another
  start time (the pid was reused): removed;
* any other host (a staging folder on a shared volume): left alone -- its pids mean nothing
  here, and a live process's folder must never be removed;
* folders of older versions (`kustomer-stage-*` directly in the system temp folder, no owner
  recorded) are removed once nothing in them has changed for `LEGACY_IDLE_SECONDS`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

from kustomer_assets.processes import process_alive, process_start

STAGING_DIR_VARIABLE = "KUSTOMER_STAGING_DIR"
DEFAULT_STAGING_DIR_NAME = "kustomer-assets-staging"
LEGACY_PREFIX = "kustomer-stage-"
LEGACY_IDLE_SECONDS = 10 * 60
"""Idle time after which an old-style folder (owner unknown) is taken for abandoned."""

_RUN_FOLDER = re.compile(r"(?P<pid>\d+)-(?P<start>\d+)-(?P<host>[0-9a-f]{8})-.+")


def staging_root() -> Path:
    configured = os.environ.get(STAGING_DIR_VARIABLE, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path(tempfile.gettempdir()) / DEFAULT_STAGING_DIR_NAME


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode("utf-8")).hexdigest()[:8]


def _own_start() -> int:
    return process_start(os.getpid()) or 0


def new_staging_folder() -> Path:
    """A fresh folder for one run, mode 0o700, named after this process."""
    root = staging_root()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    prefix = f"{os.getpid()}-{_own_start()}-{_host_tag()}-"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))  # mkdtemp creates it 0o700


def owner_alive(pid: int, start: int) -> bool:
    """Whether process `pid`, started at `start` (0: unknown), still runs on this host."""
    return process_alive(pid, start or None)


def _idle_seconds(folder: Path, now: float) -> float:
    newest = folder.lstat().st_mtime
    for entry in os.scandir(folder):
        try:
            newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
        except OSError:
            continue
    return now - newest


def sweep_staging() -> list[Path]:
    """Remove the staging folders of runs that are gone; never raises (a sweep that cannot
    finish must not stop a run). Returns the folders removed."""
    removed: list[Path] = []
    host = _host_tag()
    try:
        entries = list(os.scandir(staging_root()))
    except OSError:
        entries = []
    for entry in entries:
        match = _RUN_FOLDER.fullmatch(entry.name)
        if match is None or match["host"] != host or not entry.is_dir(follow_symlinks=False):
            continue
        if not owner_alive(int(match["pid"]), int(match["start"])):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    now = time.time()
    try:
        legacy = [e for e in os.scandir(tempfile.gettempdir()) if e.name.startswith(LEGACY_PREFIX)]
    except OSError:
        legacy = []
    for entry in legacy:
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if _idle_seconds(Path(entry.path), now) < LEGACY_IDLE_SECONDS:
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed
