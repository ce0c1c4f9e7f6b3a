"""Runs: the only layer that composes measure, classify and store.

:mod:`.engine` measures a list of targets under the run's limits (concurrency, per host,
per address, rate, helper slots) with one writer; :mod:`.watch` repeats runs for volunteers;
:mod:`.reanalyze` re-judges stored runs; :mod:`.tracing` plans and stores packet-level traces;
:mod:`.asn` loads ASN data for the classifier.
"""
