"""Run ownership: one process measures a run at a time, and a resumer takes over only from a
dead owner.

A run being measured holds a lease (a ``run_leases`` row, :meth:`probe.store.Store.claim_run`):
its owner's random token, process id, host (hashed) and boot id, and an expiry the owner's
heartbeat renews every few seconds (:data:`LEASE_SECONDS` ahead). ``probe run --resume``
decides here whether the current owner is gone:

* no lease, or an expired one (the owner stopped renewing it: killed, powered off, or stopped
  for longer than a lease) → free;
* a lease of this machine (same host and boot) whose process no longer exists → free at once;
* otherwise the owner may be alive — running, or stopped with SIGSTOP, which keeps its process
  but not its heartbeat — and the resume is refused with the reason and how long to wait.

Taking over is a compare-and-swap in one transaction (the store claims the run only if the
lease still belongs to the owner judged dead), and every later write of the old owner checks
the lease first, so a stopped process that is continued after being taken over stores nothing
and stops: no target of a run is measured into it twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.errors import StorageError
from probe.store import Store

#: Seconds a lease lasts without renewal (the heartbeat renews it every few seconds).
LEASE_SECONDS = 30.0
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def host_id() -> str:
    """This machine's identity in a lease: a hash of its host name (the name itself can
    identify a volunteer, and databases travel)."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:16]


def boot_id() -> str:
    """This boot's id (Linux); "" when unknown (then only expiry can free a lease)."""
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    """Does process ``pid`` exist on this machine (running or stopped, not a zombie)?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who claims a run: a fresh random ``token`` per claim, and where the process lives."""

    token: str
    pid: int
    host: str
    boot_id: str

    @classmethod
    def this_process(cls) -> Owner:
        return cls(secrets.token_hex(8), os.getpid(), host_id(), boot_id())

    def same_machine(self, other: Owner) -> bool:
        return bool(self.boot_id) and (self.host, self.boot_id) == (other.host, other.boot_id)


@dataclass(frozen=True, slots=True)
class Holder:
    """The current lease of a run, as stored."""

    owner: Owner
    expires_at: dt.datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Holder:
        return cls(Owner(row["owner"], int(row["pid"]), row["host"], row["boot_id"]),
                   _parse(row["expires_at"]))


def refusal(run_id: str, holder: Holder | None, last_seen: dt.datetime, me: Owner,
            now: dt.datetime, alive: Callable[[int], bool] = pid_alive) -> str | None:
    """Why ``me`` may not take the run over now (one line with how long to wait), or None
    when its owner is gone (see the module docstring). ``holder`` None: a run without a lease
    (an older probe's, or one that crashed before claiming it) is judged by its last
    heartbeat ``last_seen`` instead."""
    if holder is None:
        left = LEASE_SECONDS - (now - last_seen).total_seconds()
        if left <= 0:
            return None
        return (f"run {run_id} was active {LEASE_SECONDS - left:.0f} s ago and may still be "
                f"running: resume it again in {left:.0f} s")
    left = (holder.expires_at - now).total_seconds()
    if left <= 0:
        return None
    pid = holder.owner.pid
    if me.same_machine(holder.owner):
        if not alive(pid):
            return None
        return (f"run {run_id} is still owned by probe process {pid} on this machine "
                f"(running, or stopped): wait for it to end, or end it (kill {pid}); if it "
                f"is stopped, its lease runs out in {left:.0f} s and you can resume then")
    return (f"run {run_id} is owned by a probe process on another machine or boot "
            f"(pid {pid}) whose lease runs {left:.0f} s more: resume it again in "
            f"{left:.0f} s")


def claim(store: Store, run: str, me: Owner, now: dt.datetime | None = None) -> str:
    """Take over run ``run`` (an id, unique prefix or ``latest``) for ``me``; returns its full
    id. StorageError when it is completed, when its owner may be alive (with how long to
    wait), or when another process claimed it first."""
    now = now or dt.datetime.now(dt.UTC)
    state = store.run_claim_state(run)
    run_id = str(state["run_id"])
    if state["status"] == "completed":
        raise StorageError(f"run {run_id} is completed; only an interrupted run can be resumed")
    holder = Holder.from_row(state["lease"]) if state["lease"] else None
    if holder is not None or state["status"] == "running":
        why = refusal(run_id, holder, _parse(state["last_seen_at"]), me, now)
        if why:
            raise StorageError(why)
    expected = holder.owner.token if holder else None
    if not store.claim_run(run_id, lease_fields(me), expected, LEASE_SECONDS):
        raise StorageError(f"run {run_id} was just resumed by another process")
    return run_id


def lease_fields(me: Owner) -> dict[str, Any]:
    """What the store records of an owner."""
    return {"owner": me.token, "pid": me.pid, "host": me.host, "boot_id": me.boot_id}


def _parse(text: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
