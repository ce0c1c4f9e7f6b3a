"""Storage: the SQLite database of runs, observations and verdicts; the only owner of its SQL.

Public API: :class:`Store` (``Store.open(path, own_addresses=...)`` to write, every write
scrubbed of the volunteer's addresses; ``Store.open_readonly(path)`` to read) and
:func:`default_db_path`. The schema is documented in :mod:`probe.store.schema`; record ↔ row
mapping and the row builders live in :mod:`probe.store.rows`; every other reader of a probe
file (reports, exports, merge, the benchmark) opens it through :mod:`probe.store.readonly`.
"""

from probe.store.db import Store, default_db_path
from probe.store.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Store", "default_db_path"]
