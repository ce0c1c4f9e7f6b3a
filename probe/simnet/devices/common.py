"""Shared start-up of the simulator's helper processes: arguments, config, ready file, signals."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any


def parse_args(prog: str) -> tuple[dict[str, Any], Path | None]:
    parser = argparse.ArgumentParser(prog=f"python -m {prog}")
    parser.add_argument("--config", required=True)
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    config = json.loads(Path(args.config).read_text(encoding="utf-8"))
    return config, Path(args.ready_file) if args.ready_file else None


def ready(path: Path | None, info: dict[str, Any] | None = None) -> None:
    """Announce readiness (atomically written JSON, or 'ready' on stdout)."""
    if path is None:
        print("ready", flush=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **(info or {})}), encoding="utf-8")
    tmp.replace(path)


def stop_event() -> threading.Event:
    """An event set on SIGTERM/SIGINT."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def log(prog: str, message: str) -> None:
    print(f"{prog}: {message}", file=sys.stderr, flush=True)
