"""``python -m probe.lab.world``: run one world's servers until SIGTERM/SIGINT.

Usage::

    python -m probe.lab.world --config FILE.json [--ready-file PATH] [--check] [--log-level LEVEL]

Starts every server of the :class:`~probe.lab.world.spec.WorldConfig` in ``FILE.json`` in one
asyncio loop. Once *all* sockets are bound it writes the ready file atomically (JSON: pid, CA
paths and every bound address, see :meth:`probe.lab.world.runtime.World.addresses`) or, without
``--ready-file``, prints ``ready`` on stdout. SIGTERM/SIGINT close everything, remove the ready
file and exit 0. ``--check`` only validates the config (and creates the PKI) and exits.

Exit status: 0 clean stop, 1 a server could not start (e.g. address in use), 2 bad config.
Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

from .runtime import World, write_atomic
from .spec import WorldConfig

log = logging.getLogger("probe.lab.world")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m probe.lab.world", description="Run the simulated world's servers."
    )
    parser.add_argument("--config", required=True, help="world JSON file (WorldConfig)")
    parser.add_argument("--ready-file", help="written (JSON) once every socket is bound")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default)")
    return parser


async def _run(config: WorldConfig, ready_file: str | None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    world = World(config)
    try:
        await world.start()
    except OSError as exc:
        print(f"probe.lab.world: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        if ready_file:
            write_atomic(ready_file, json.dumps(world.addresses(), indent=2) + "\n")
        else:
            print("ready", flush=True)
        log.info("world ready: %s", world.addresses())
        await stop.wait()
    finally:
        await world.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        config = WorldConfig.load(args.config)
    except (OSError, ValueError) as exc:
        print(f"probe.lab.world: bad config: {exc}", file=sys.stderr)
        return 2
    if args.check:
        World(config)  # creates/loads the PKI too
        print("config ok")
        return 0
    try:
        return asyncio.run(_run(config, args.ready_file))
    finally:
        if args.ready_file:
            with contextlib.suppress(OSError):
                Path(args.ready_file).unlink()


if __name__ == "__main__":
    sys.exit(main())
