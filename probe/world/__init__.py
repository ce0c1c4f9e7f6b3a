"""The simulated world's real servers: DNS, HTTP/HTTPS sites and their certificates.

This package is responsible for everything the probe talks to in a test: authoritative and
forwarding DNS servers with scripted misbehaviour (:mod:`.dns`), web sites with scripted
behaviours and certificate problems (:mod:`.web`, hostile HTTP wire scripts in
:mod:`.rawhttp`), the world CA / rogue CA / untrusted CA (:mod:`.pki`), their JSON
configuration (:mod:`.config`), one event loop running a whole world (:mod:`.runtime`,
``python -m probe.world``), a loopback harness for tests and the demo (:mod:`.loopback`) and
the hostile world, where every peer misbehaves (:mod:`.hostile`). It knows nothing about
censorship: censors live in :mod:`probe.simnet`.
See ``probe/world/README.md``.
"""

from __future__ import annotations

from .config import DNSServerConfig, SiteConfig, WebServerConfig, WorldConfig
from .pki import WorldPKI

__all__ = ["DNSServerConfig", "SiteConfig", "WebServerConfig", "WorldConfig", "WorldPKI"]
