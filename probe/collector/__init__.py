"""The collector (issue 16): enrolled probes upload their scrubbed measurements over HTTPS.

``receiver`` receives, ``validation`` checks, the store (:mod:`probe.store.collector`) keeps
them in a probe database that every read command reads, and ``upload`` is the probe's side
(its queue: :mod:`probe.store.outbox`).
"""
