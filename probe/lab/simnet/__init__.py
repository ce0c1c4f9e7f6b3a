"""The simulated censoring network (`probe sim`): real namespaces, real censor rules, scenarios.

Modules, in the order things happen: :mod:`.scenario` (scenario files → frozen records),
:mod:`.addressing` (who owns which address, the ip2asn table), :mod:`.site_plan` (sites → server
configs), :mod:`.topology` (namespaces, veths, routes), :mod:`.techniques` (the censor's rules and
helper processes in :mod:`.devices`), :mod:`.checks` and :mod:`.selfcheck` (self-checks),
:mod:`.sim` (one running simulation: up, state, teardown), :mod:`.scenario_run` (scenario end to
end), :mod:`.loopback_subset` (the no-root subset), :mod:`.kazakhstan_demo` (`make demo`); the
`probe sim` commands live in :mod:`probe.cli.sim_cmd`.
See docs/simnet.md.
"""
