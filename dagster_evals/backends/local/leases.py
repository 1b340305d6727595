"""Who is writing a staged sync or a running eval report, and whether that writer is still alive.

A sync stages its rows before publishing them, and an eval report is `running` until its last row is stored.
A crash (a SIGKILLed step, a lost host) leaves both behind. Each records its *owner* — host, PID namespace,
process id and the process's start time — and refreshes a heartbeat every `HEARTBEAT_EVERY` while it works.
A later sync of the dataset (or eval of the suite) judges the owner gone when:

- it ran in this very process and is no longer active here (an in-process step that failed), or
- it ran on this host in this PID namespace and that process no longer exists (or is another process that
  reused the id: its start time differs), or
- its heartbeat is older than `OWNER_LOST_AFTER` (the only sign for an owner on another host or container).

A live writer is never judged gone: its process exists, or its heartbeat is fresh.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from dagster_evals.engine.models import utcnow

HEARTBEAT_EVERY = timedelta(seconds=30)
OWNER_LOST_AFTER = timedelta(minutes=5)

_active: set[str] = set()
_active_lock = threading.Lock()


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "-"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()[19]


def this_process() -> str:
    """This process as an owner: `host|pid namespace|pid|start time`."""
    pid = os.getpid()
    return f"{socket.gethostname()}|{_pid_namespace()}|{pid}|{_start_time(pid) or '-'}"


def _process_exists(pid: int, start: str) -> bool:
    if start != "-":
        return _start_time(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_gone(
    lease_id: str, owner: str | None, heartbeat_at: str | None, now: datetime | None = None
) -> str | None:
    """Why the owner of `lease_id` is known gone (a sentence for the record), or None while it may be alive.

    An owner recorded before owners were (None) is judged by its heartbeat (its creation time) alone.
    """
    now = now or utcnow()
    if owner:
        host, namespace, pid, start = [*owner.split("|"), "-", "-", "0", "-"][:4]
        if owner == this_process():
            with _active_lock:
                if lease_id not in _active:
                    return f"its step failed in process {pid} on {host} before finishing"
                return None
        if host == socket.gethostname() and namespace == _pid_namespace() and pid.isdigit():
            if not _process_exists(int(pid), start):
                return f"the process that ran it (pid {pid} on {host}) is gone"
            return None
    if heartbeat_at:
        try:
            last = datetime.fromisoformat(heartbeat_at)
        except ValueError:
            return None
        if now - last > OWNER_LOST_AFTER:
            where = f" ({owner.split('|')[0]})" if owner else ""
            return f"its writer{where} sent no heartbeat since {heartbeat_at}"
    return None


class Lease:
    """This process's claim on a staged sync or a running report: active here until `release()`, with its
    heartbeat refreshed by `touch` (a function writing `utcnow()` to the record) every `HEARTBEAT_EVERY`."""

    def __init__(self, lease_id: str, touch: Callable[[str], None] | None) -> None:
        self.id = lease_id
        self.owner = this_process()
        self._touch = touch
        self._stop = threading.Event()
        with _active_lock:
            _active.add(lease_id)
        if touch is not None:  # None: an in-memory database, which no other process sees
            thread = threading.Thread(
                target=self._beat, name=f"dagster-evals-lease-{lease_id[:8]}", daemon=True
            )
            thread.start()

    def _beat(self) -> None:
        touch = self._touch
        assert touch is not None
        while not self._stop.wait(HEARTBEAT_EVERY.total_seconds()):
            try:
                touch(utcnow().isoformat())
            except (
                Exception
            ):  # a database blip: the next beat tries again; the writer itself will fail loudly
                continue

    def release(self) -> None:
        """The work is done (or failed here): stop the heartbeat; the record is no longer active."""
        self._stop.set()
        with _active_lock:
            _active.discard(self.id)
