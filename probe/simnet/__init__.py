"""The simulated censoring network (`probe sim`): real namespaces, real censor rules, scenarios.

Modules, in the order things happen: :mod:`.scenario` (scenario files → frozen records),
:mod:`.addressing` (who owns which address, the ip2asn table), :mod:`.world` (sites → server
configs), :mod:`.topology` (namespaces, veths, routes), :mod:`.techniques` (the censor's rules and
helper processes in :mod:`.devices`), :mod:`.checks` and :mod:`.selfcheck` (self-checks),
:mod:`.sim` (one running simulation: up, state, teardown), :mod:`.runner` (scenario end to end),
:mod:`.loopback` (the no-root subset), :mod:`.cli` (`probe sim`), :mod:`.demo` (`make demo`).
See docs/simnet.md.
"""
