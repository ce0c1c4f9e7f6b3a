"""Storage: the SQLite database of runs, observations and verdicts (schema, migrations, IO).

Public API: :class:`Store` (``Store.open(path)``) and :func:`default_db_path`. The schema is
documented in :mod:`probe.store.schema`; record ↔ row mapping lives in :mod:`probe.store.rows`.
"""

from probe.store.db import Store, default_db_path
from probe.store.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Store", "default_db_path"]
