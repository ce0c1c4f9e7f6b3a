"""The benchmark's simulated world: which sites exist, how each misbehaves, what each costs.

Everything the benchmark assumes about its world lives here, so the lower bound it reports
can be read off one table (:data:`MIXED`):

* the **mixed list** (1,000 targets) stands for a national test list: most sites healthy,
  some blackholed (the censor drops their packets: the probe waits out its connect timeout),
  some reset by the censor, some throttled, some down for everyone (one does not answer, one
  refuses connections). Healthy sites answer after :data:`HEALTHY_DELAY` seconds, standing
  in for the round trips and server time of a real page load (the kernel here has no netem);
* the **fast list** (1,000 or 10,000 targets) is for memory: healthy sites that answer at
  once, each with :data:`FAST_PATHS` pages, so 10,000 distinct URLs need only 1,000 sites;
* every class has a *design cost*: the time no probe can beat for one target of that class
  (a blackholed target costs its connect attempts' timeouts; a throttled one its bytes at the
  shaped rate). Classes whose cost is set by the probe's own work (healthy, reset, refused) are
  measured instead: see :mod:`probe.lab.bench.stats`.

The world is a :class:`probe.lab.simnet.scenario.Scenario` built in memory with the simulated
network's public API; nothing here touches the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from probe.lab.simnet import scenario as S
from probe.measure.settings import MeasureSettings

#: Every network step's deadline in the benchmark (``probe run --timeout``), seconds.
TIMEOUT = 2.0
#: Server-side delay of a healthy page (seconds): stands in for RTTs and server time.
HEALTHY_DELAY = 0.2
#: Body size of a healthy (and of a throttled) page, bytes.
PAGE_SIZE = 32_000
#: The censor's throttling rate, and the same in bits per second: over 10x slower than a
#: healthy page arrives (32 kB in 0.2 s), as the classifier's throttling rule requires.
THROTTLE_RATE = "100kbit"
THROTTLE_BPS = 100_000.0
#: Body size of a throttled page: big enough to measure a rate (the classifier wants 16 KiB),
#: small enough to arrive before the step timeout (1.6 s at 100 kbit/s, under 2 s).
THROTTLED_SIZE = 20_000
#: Body size of a fast page (memory runs), bytes.
FAST_SIZE = 4_000
#: Pages per fast site: the 10,000-target list is 1,000 sites × 10 paths.
FAST_PATHS = 10
FAST_SITES = 1_000
#: Networks of the world the sites are spread over (domestic and international hosting).
NETWORKS = ("eu-host", "us-host", "ru-host", "cdn", "kz-host", "cdn-kz")


#: Connect attempts on an address that does not answer: the probe retries a connect that
#: timed out (``MeasureSettings.connect_retries``), so a blackholed target waits out each.
CONNECT_ATTEMPTS = 1 + getattr(MeasureSettings(), "connect_retries", 0)


@dataclass(frozen=True, slots=True)
class Klass:
    """One kind of target in the mixed list.

    ``count``: targets of this kind in the 1,000-target list (a multiple of
    :data:`SUBSET_DIVISOR`, so every subset keeps the same mix). ``timeouts``: connect
    timeouts one target of this kind waits out by construction; ``transfer``: seconds its
    page needs at the shaped rate; both 0 = the probe's own work sets its cost (measured).
    ``site``: simnet site keys; ``censor``: the simnet technique entry naming these hosts.
    """

    name: str
    prefix: str
    count: int
    expect: str
    what: str
    timeouts: int = 0
    transfer: float = 0.0
    site: tuple[tuple[str, Any], ...] = ()
    censor: tuple[tuple[str, Any], ...] = ()

    def design(self, timeout: float) -> float | None:
        """Seconds one target costs by construction with this step timeout; None = measured."""
        if not self.timeouts and not self.transfer:
            return None
        return self.timeouts * timeout + self.transfer


#: The subsets (concurrency 1, concurrency sweep) take every N-th target of each class.
SUBSET_DIVISOR = 20

MIXED: tuple[Klass, ...] = (
    Klass("healthy", "ok", 840, "ok",
          f"answers {PAGE_SIZE // 1000} kB after {HEALTHY_DELAY:.1f} s",
          site=(("size", PAGE_SIZE), ("delay", HEALTHY_DELAY))),
    Klass("blackholed", "bh", 40, "blocked/tcp.timeout",
          f"the censor drops every packet: {CONNECT_ATTEMPTS} connects time out",
          timeouts=CONNECT_ATTEMPTS,
          censor=(("technique", "ip_block"), ("action", "drop"))),
    Klass("reset", "rst", 40, "blocked/tcp.reset",
          "the censor answers the SYN with a TCP reset",
          censor=(("technique", "ip_block"), ("action", "reset"))),
    Klass("throttled", "thr", 20, "throttled/throttle",
          f"{THROTTLED_SIZE // 1000} kB shaped to {THROTTLE_RATE} (one shared class)",
          transfer=THROTTLED_SIZE * 8 / THROTTLE_BPS,
          site=(("size", THROTTLED_SIZE),),
          censor=(("technique", "throttle"), ("rate", THROTTLE_RATE))),
    Klass("down-timeout", "dead", 40, "down/down.tcp",
          f"the server answers nobody: {CONNECT_ATTEMPTS} connects time out",
          timeouts=CONNECT_ATTEMPTS, site=(("down", "timeout"),)),
    Klass("down-refused", "closed", 20, "down/down.tcp",
          "nothing listens: connection refused",
          site=(("down", "refused"),)),
)
KLASS_BY_NAME = {k.name: k for k in MIXED}
MIXED_TOTAL = sum(k.count for k in MIXED)


def hostname(klass: Klass, index: int) -> str:
    return f"{klass.prefix}{index:04d}.bench-sim.net"


def fast_hostname(index: int) -> str:
    return f"f{index:04d}.bench-fast.net"


def klass_of(host: str) -> str:
    """The class name of a benchmark hostname ("fast" for the memory list's sites)."""
    if host.endswith(".bench-fast.net"):
        return "fast"
    head = host.split(".", 1)[0].rstrip("0123456789")
    for k in MIXED:
        if k.prefix == head:
            return k.name
    raise KeyError(host)


def mixed_urls(divisor: int = 1) -> list[str]:
    """The mixed list (``divisor`` > 1: every ``divisor``-th target of each class), with the
    classes interleaved evenly as in a real list (not sorted by outcome)."""
    per_class = []
    for k in MIXED:
        if k.count % divisor:
            raise ValueError(f"{k.name}: {k.count} targets do not divide by {divisor}")
        per_class.append([f"https://{hostname(k, i)}/" for i in range(0, k.count, divisor)])
    total = sum(len(c) for c in per_class)
    # Interleave by spreading each class's targets evenly over the list (stable, no RNG).
    keyed = [((j + 0.5) / len(urls), n, url)
             for n, urls in enumerate(per_class) for j, url in enumerate(urls)]
    keyed.sort()
    out = [url for _, _, url in keyed]
    assert len(out) == total
    return out


def fast_urls(count: int) -> Iterator[str]:
    """``count`` fast targets: page 0 of every site, then page 1 of every site, …"""
    if not 0 < count <= FAST_SITES * FAST_PATHS:
        raise ValueError(f"fast list: 1..{FAST_SITES * FAST_PATHS} targets")
    for n in range(count):
        page, site = divmod(n, FAST_SITES)
        yield f"https://{fast_hostname(site)}/page/{page}"


def scenario(timeout: float = TIMEOUT) -> S.Scenario:
    """The benchmark world as a simnet Scenario (validated by simnet's own parser)."""
    sites: list[dict[str, Any]] = []
    censors: list[dict[str, Any]] = []
    n = 0
    for k in MIXED:
        hosts = [hostname(k, i) for i in range(k.count)]
        for h in hosts:
            sites.append({"host": h, "net": NETWORKS[n % len(NETWORKS)], **dict(k.site)})
            n += 1
        if k.censor:
            censors.append({**dict(k.censor), "id": k.prefix, "hosts": hosts})
    for i in range(FAST_SITES):
        sites.append({"host": fast_hostname(i), "net": NETWORKS[i % len(NETWORKS)],
                      "size": FAST_SIZE})
    targets = [{"url": url, "expect": KLASS_BY_NAME[klass_of(url.split("/")[2])].expect}
               for url in mixed_urls()]
    data = {
        "description": "benchmark: a mixed national list and a fast list for memory runs",
        "timeout": timeout,
        "sites": sites,
        "censor": censors,
        "targets": targets,
    }
    return S.parse(data, "bench", "<probe.lab.bench.sites>")
