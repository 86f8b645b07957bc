"""Is a process on this host still the one that started something? Read from /proc.

Staging folders and runs both record the pid that owns them; a pid alone is not enough, since
a restarted container or a long uptime reuses pids, so the owner's start time is kept too.
When in doubt the answer is "alive": deleting a live run's files or failing a live run is worse
than leaving a dead one's for a while.
"""

from __future__ import annotations

import os
from pathlib import Path


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) from /proc, or None where unreadable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2, the command name, is in parentheses and may itself hold spaces or parentheses.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def process_start(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), or None where /proc cannot tell."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def process_alive(pid: int, start: int | None) -> bool:
    """Whether process `pid`, started at `start` (None: unknown), still runs on this host."""
    if pid <= 0:
        return True  # not a process id (os.kill(0) would signal our own process group)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    except OSError:
        return True
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, started = stat
    if state in {"Z", "X"}:  # killed, not yet reaped by its parent
        return False
    return start is None or started == start
