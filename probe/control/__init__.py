"""The control helper: a vantage outside the censored network, and the probe's client of it.

:mod:`.protocol` (the v1 wire format), :mod:`.server` and :mod:`.service` (the public HTTP
service), :mod:`.measure` (what the helper measures for one request) and :mod:`.client`
(the probe's side, which never fails a run).
"""
