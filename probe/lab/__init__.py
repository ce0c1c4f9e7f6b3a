"""Laboratory equipment: everything that is not needed to measure anything.

The simulated world's real servers (:mod:`probe.lab.world`), the simulated censoring network
(:mod:`probe.lab.simnet`), the benchmark (:mod:`probe.lab.bench`), synthetic report data
(:mod:`probe.lab.synth`) and the demo (:mod:`probe.lab.demo`). The product (measure, classify,
store, report) never imports from here; the lab imports the product to exercise it.
"""
