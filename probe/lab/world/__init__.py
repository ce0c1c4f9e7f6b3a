"""The simulated world's real servers: DNS, HTTP/HTTPS sites and their certificates.

This package is responsible for everything the probe talks to in a test: authoritative and
forwarding DNS servers with scripted misbehaviour (:mod:`.dns_server`), web sites with scripted
behaviours and certificate problems (:mod:`.web_server`, hostile HTTP wire scripts in
:mod:`.rawhttp`), the world CA / rogue CA / untrusted CA (:mod:`.pki`), their JSON
configuration (:mod:`.spec`), one event loop running a whole world (:mod:`.runtime`,
``python -m probe.lab.world``), a loopback harness for tests and the demo (:mod:`.loopback`) and
the hostile world, where every peer misbehaves (:mod:`.hostile`). It knows nothing about
censorship: censors live in :mod:`probe.lab.simnet`.
See ``probe/lab/world/README.md``.
"""

from __future__ import annotations

from .pki import WorldPKI
from .spec import DNSServerConfig, SiteConfig, WebServerConfig, WorldConfig

__all__ = ["DNSServerConfig", "SiteConfig", "WebServerConfig", "WorldConfig", "WorldPKI"]
