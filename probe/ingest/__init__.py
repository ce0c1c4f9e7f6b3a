"""Import other people's measurements (OONI's archive): read, map into our records, judge, store.

``import`` is a Python keyword, hence the name. :mod:`~probe.ingest.reader` streams documents
from files, directories and standard input; :mod:`~probe.ingest.mapper` maps one OONI document
into a Measurement and its Provenance (pure); :mod:`~probe.ingest.importer` composes them with
the classifier and the store (``probe import ooni``, docs/import.md).
"""

from probe.ingest.importer import ImportResult, import_ooni
from probe.ingest.mapper import Mapped, MappingError, map_document

__all__ = ["ImportResult", "Mapped", "MappingError", "import_ooni", "map_document"]
