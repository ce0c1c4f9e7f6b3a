"""The benchmark (``make bench``): a 1,000-target world in the simulated network, its figures.

Modules: :mod:`.sites` (what the benchmark's world contains and what each site costs),
:mod:`.stats` (pure arithmetic over what was measured), :mod:`.harness` (the runs themselves)
and :mod:`.report_case` (a year of synthetic verdicts for the report benchmark).
"""
