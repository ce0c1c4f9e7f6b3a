"""Thin wrappers around `ip netns`, processes inside namespaces, and leftover discovery.

Everything the simulated network creates lives inside network namespaces whose names start
with :data:`GLOBAL_PREFIX` followed by a per-run id, so deleting those namespaces (after killing
``ip netns pids NS``) removes every interface, route, iptables/nft rule, qdisc and socket the run
made. This module owns that naming rule and the low-level commands; nothing here decides what a
topology looks like.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from probe.errors import ProbeError

#: Every namespace / state dir the simulator creates starts with this.
GLOBAL_PREFIX = "psim"
#: Where running simulations keep their state, logs, configs and certificates.
RUN_ROOT = Path("/run/probe-sim")
#: Where `ip netns exec` finds per-namespace resolv.conf files.
ETC_NETNS = Path("/etc/netns")

_PREFIX_RE = re.compile(rf"^{GLOBAL_PREFIX}[0-9a-f]{{4}}$")


class NetnsError(ProbeError, RuntimeError):
    """A command that builds or tears down the simulated network failed."""


def new_prefix() -> str:
    """A fresh run prefix such as ``psim3fa2`` that no existing namespace or state dir uses."""
    for _ in range(100):
        prefix = GLOBAL_PREFIX + secrets.token_hex(2)
        taken = any(ns.startswith(prefix + "-") for ns in list_netns())
        if not taken and not (RUN_ROOT / prefix).exists():
            return prefix
    raise NetnsError("could not find a free run prefix")


def is_prefix(text: str) -> bool:
    """True for a run prefix made by :func:`new_prefix`."""
    return bool(_PREFIX_RE.match(text))


def run(
    argv: Sequence[str],
    *,
    ns: str | None = None,
    input: str | None = None,
    check: bool = True,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """Run a command (inside namespace ``ns`` when given) and capture its output.

    Raises :class:`NetnsError` naming the command and its stderr when ``check`` and it fails.
    """
    full = list(argv) if ns is None else ["ip", "netns", "exec", ns, *argv]
    try:
        proc = subprocess.run(
            full, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise NetnsError(f"{full[0]}: command not found (run `make install`)") from exc
    except subprocess.TimeoutExpired as exc:
        raise NetnsError(f"{' '.join(full)}: timed out after {timeout:.0f}s") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise NetnsError(f"{' '.join(full)} failed: {' | '.join(detail[-5:])}")
    return proc


def run_script(script: str, *, ns: str | None = None, timeout: float = 60.0) -> None:
    """Run a bash script (``set -e``), inside ``ns`` when given."""
    run(["bash", "-euo", "pipefail", "-c", script], ns=ns, timeout=timeout)


def list_netns() -> list[str]:
    """Names of all network namespaces (``ip netns list``)."""
    proc = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def netns_pids(ns: str) -> list[int]:
    """PIDs of every process whose network namespace is ``ns``."""
    proc = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def kill_pids(pids: Sequence[int], grace: float = 1.0) -> None:
    """SIGTERM each pid, then SIGKILL whatever still runs after ``grace`` seconds."""
    alive = []
    for pid in pids:
        if pid == os.getpid():
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
            alive.append(pid)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _exists(p)]
        if alive:
            time.sleep(0.05)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours still "exists" until reaped; reap it if it is ours
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def destroy_namespaces(names: Sequence[str]) -> None:
    """Kill every process in the namespaces, then delete them (missing ones are ignored)."""
    pids: list[int] = []
    for ns in names:
        pids.extend(netns_pids(ns))
    if pids:
        kill_pids(sorted(set(pids)))
    for ns in names:
        for _ in range(3):
            proc = run(["ip", "netns", "delete", ns], check=False)
            if proc.returncode == 0 or ns not in list_netns():
                break
            kill_pids(netns_pids(ns), grace=0.2)
            time.sleep(0.1)
        shutil.rmtree(ETC_NETNS / ns, ignore_errors=True)


def namespaces_of(prefix: str) -> list[str]:
    """Existing namespaces that belong to the run ``prefix``."""
    return [ns for ns in list_netns() if ns.startswith(prefix + "-")]


def leftover_prefixes() -> list[str]:
    """Every run prefix that still has a namespace, an /etc/netns dir or a state dir."""
    found: set[str] = set()
    for ns in list_netns():
        head = ns.split("-", 1)[0]
        if is_prefix(head):
            found.add(head)
    for root in (ETC_NETNS, RUN_ROOT):
        if root.is_dir():
            for entry in root.iterdir():
                head = entry.name.split("-", 1)[0]
                if is_prefix(head):
                    found.add(head)
    return sorted(found)


def cleanup_prefix(prefix: str) -> list[str]:
    """Remove everything the run ``prefix`` made; returns the namespaces deleted. Idempotent."""
    if not is_prefix(prefix):
        raise NetnsError(f"{prefix!r} is not a simulator run prefix")
    names = namespaces_of(prefix)
    destroy_namespaces(names)
    if ETC_NETNS.is_dir():
        for entry in ETC_NETNS.iterdir():
            if entry.name.startswith(prefix + "-"):
                shutil.rmtree(entry, ignore_errors=True)
    shutil.rmtree(RUN_ROOT / prefix, ignore_errors=True)
    with contextlib.suppress(OSError):
        if ETC_NETNS.is_dir() and not any(ETC_NETNS.iterdir()):
            ETC_NETNS.rmdir()
    return names


def have_root() -> tuple[bool, str]:
    """Whether namespaces can be made here; the reason when not (one line)."""
    if os.geteuid() != 0:
        return False, "the simulated network needs root (network namespaces, iptables, tc)"
    if shutil.which("ip") is None:
        return False, "the simulated network needs iproute2 (`ip`); run `make install`"
    probe_ns = f"{GLOBAL_PREFIX}test-{os.getpid()}"
    proc = run(["ip", "netns", "add", probe_ns], check=False)
    if proc.returncode != 0:
        return False, f"cannot create network namespaces: {proc.stderr.strip()}"
    run(["ip", "netns", "delete", probe_ns], check=False)
    return True, ""
