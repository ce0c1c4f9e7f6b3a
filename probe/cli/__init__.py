"""The ``probe`` command line: typer only, a thin shell over the library.

The root app and its one error boundary live in :mod:`.root`; each command group has its own
module (``*_cmd``); :mod:`.config` owns settings precedence (command line > environment >
config file > default) and :mod:`.consent` the volunteer's informed consent.
"""

from probe.cli.root import app, main

__all__ = ["app", "main"]
