"""Suite-wide test environment: consent given, and no developer configuration leaking in.

Set at import, before any test (and every `python -m probe` the tests start) reads it:

* ``PROBE_ACCEPT_RISK=1``: the tests and the simulated network measure only loopback and
  namespace worlds, so the informed-consent notice is accepted for them;
* ``XDG_CONFIG_HOME``: a fresh empty directory, so the developer's own
  ``~/.config/probe/config.toml`` and consent file are never read or written;
* the ``PROBE_*`` variables of `probe run` settings and ``PROBE_CONFIG`` are cleared.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from probe.cli.config import CONFIG_ENV, RUN_SETTINGS

for _setting in RUN_SETTINGS:
    os.environ.pop(_setting.env, None)
os.environ.pop(CONFIG_ENV, None)
os.environ["PROBE_ACCEPT_RISK"] = "1"
_config_home = tempfile.mkdtemp(prefix="probe-tests-config-")
os.environ["XDG_CONFIG_HOME"] = _config_home
atexit.register(shutil.rmtree, _config_home, True)
