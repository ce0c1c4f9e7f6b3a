"""Benchmark case: the ``im`` and ``circumvention`` groups in the simulated network — time
against the lower bound from the timeouts, and bytes sent per app test (volunteers pay for data).

Two worlds of the scenario catalogue (issue 14): ``apps_ip_ranges`` (WhatsApp, Telegram and
Messenger dropped by IP range, Signal up) for the time, and ``apps_baseline`` (every endpoint
up) for the bytes. Every run is ``python -m probe run`` in the client namespace, as a
volunteer starts it.

* **Time**: ``probe run --tests im`` (control helper and canaries as in the scenarios). Its
  lower bound is what the timeouts force: a blackholed endpoint costs ``connect_timeout`` per
  attempt, twice (one retry), and the apps' endpoints are measured at once, so the bound is
  ``2 × timeout`` plus the probe's own fixed costs measured in the same world (a run of one
  healthy website: process start, health rounds, storing). Ratio = wall / bound (goal ≤ 1.3).
* **Bytes**: each app (and the VPN list) alone, without control or canaries; bytes and packets
  the client namespace's interface sent (``/sys/class/net/*/statistics/tx_*``) during the run
  — everything the app test put on the wire: DNS, handshakes, requests, retries.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from probe.lab.simnet import scenario as S
from probe.lab.simnet.sim import Sim, child_env

#: The apps whose bytes are counted, and their inputs.
APPS = ("whatsapp://whatsapp", "telegram://telegram", "signal://signal",
        "facebook_messenger://facebook_messenger", "endpoint://vpn")
TIME_SCENARIO = "apps_ip_ranges"
BYTES_SCENARIO = "apps_baseline"


def _tx(sim: Sim) -> tuple[int, int]:
    """Bytes and packets sent by every interface of the client namespace so far."""
    script = ("for d in /sys/class/net/*; do [ \"${d##*/}\" = lo ] && continue; "
              "echo $(cat $d/statistics/tx_bytes) $(cat $d/statistics/tx_packets); done")
    out = subprocess.run(sim.exec_argv(["sh", "-c", script]), capture_output=True, text=True,
                         timeout=30).stdout
    rows = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    return sum(r[0] for r in rows), sum(r[1] for r in rows)


def _run(sim: Sim, inputs: list[str], db: Path, timeout: float, extra: list[str]) -> float:
    argv = [sys.executable, "-m", "probe", "run", *inputs, "--db", str(db), "--ca-bundle",
            sim.files["ca"], "--timeout", str(timeout), "--quiet", "--accept-risk",
            "--app-lists", sim.files["app_lists"], *extra]
    t0 = time.monotonic()
    proc = subprocess.run(sim.exec_argv(argv), capture_output=True, text=True, timeout=600,
                          env=child_env(probe=True))
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"probe run exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return wall


def _with_helpers(sim: Sim) -> list[str]:
    extra = ["--canaries", sim.files["canaries"], "--asn-db", sim.files["asn"]]
    if sim.control_url:
        extra += ["--control", sim.control_url]
    return extra


def bench_im(timeout: float = 3.0, repeat: int = 3) -> dict[str, Any]:
    """Bring up the two worlds in turn and measure (see the module docstring); the figures."""
    out: dict[str, Any] = {"timeout": timeout, "repeat": repeat}
    with tempfile.TemporaryDirectory(prefix="probe-bench-im-") as tmp:
        work = Path(tmp)
        sim = Sim.start(S.load(S.find(TIME_SCENARIO)), probe_timeout=timeout)
        try:
            fixed, walls = [], []
            for i in range(repeat):
                fixed.append(_run(sim, ["https://www.debian.org/"], work / f"f{i}.db", timeout,
                                  _with_helpers(sim)))
                walls.append(_run(sim, ["--tests", "im"], work / f"im{i}.db", timeout,
                                  _with_helpers(sim)))
        finally:
            sim.stop()
        fixed.sort()
        walls.sort()
        bound = 2 * timeout + fixed[len(fixed) // 2]
        out["time"] = {"scenario": TIME_SCENARIO, "wall_s": walls[len(walls) // 2],
                       "walls_s": walls, "fixed_s": fixed[len(fixed) // 2],
                       "lower_bound_s": bound, "ratio": walls[len(walls) // 2] / bound}
        sim = Sim.start(S.load(S.find(BYTES_SCENARIO)), probe_timeout=timeout)
        try:
            costs: dict[str, dict[str, float]] = {}
            for app in APPS:
                b0, p0 = _tx(sim)
                wall = _run(sim, [app], work / f"{app.partition(':')[0]}.db", timeout, [])
                b1, p1 = _tx(sim)
                costs[app] = {"bytes_sent": b1 - b0, "packets_sent": p1 - p0, "wall_s": wall}
        finally:
            sim.stop()
        out["bytes"] = {"scenario": BYTES_SCENARIO, "per_app": costs}
    return out


def render_im(figures: dict[str, Any]) -> str:
    t = figures["time"]
    lines = [
        f"im group ({t['scenario']}: three messengers dropped by IP range, --timeout "
        f"{figures['timeout']:g}, {figures['repeat']} runs, median):",
        f"  wall {t['wall_s']:.1f} s; lower bound {t['lower_bound_s']:.1f} s = 2 × timeout "
        f"(blackholed connect + retry) + {t['fixed_s']:.1f} s fixed cost of a run; "
        f"ratio {t['ratio']:.2f} (goal ≤ 1.3)",
        f"bytes sent per app test ({figures['bytes']['scenario']}: every endpoint up, no "
        "control, no canaries):",
    ]
    for app, c in figures["bytes"]["per_app"].items():
        lines.append(f"  {app:42} {c['bytes_sent'] / 1024:8.1f} KiB  {c['packets_sent']:6d} "
                     f"packets  {c['wall_s']:.1f} s")
    return "\n".join(lines) + "\n"


def main() -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m probe.lab.bench.im_case")
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    print(render_im(bench_im(args.timeout, args.repeat)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
