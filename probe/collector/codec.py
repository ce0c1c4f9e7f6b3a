"""The content encodings of upload batches: gzip always, zstd where ``zstandard`` is installed.

Responsibility: compressing a batch for ``probe upload`` and decompressing it in the collector
with a cap on the decompressed size that holds whatever the client sent (a gzip or zstd bomb
stops at the cap, having used at most about the cap in memory).

WHY zstd (measured on our batches, docs/collector.md "Compression"): at level 6 it gives fewer
bytes than gzip at level 6 (−6 % to −12 % on the real OONI corpus imported, −27 % on the
benchmark's synthetic batches) for about half the CPU to compress and a quarter to
decompress. It is used only when the collector advertises it (``GET /v1/health`` lists its
``encodings``) or the volunteer asks for it; without the ``zstandard`` package (e.g. hardware
without a wheel) both sides fall back to gzip.
"""

from __future__ import annotations

import gzip
import zlib
from types import ModuleType

GZIP = "gzip"
ZSTD = "zstd"
IDENTITY = "identity"
GZIP_LEVEL = 6
ZSTD_LEVEL = 6
#: Largest zstd window a collector accepts (the decoder's memory besides the output); level 6
#: on a batch uses at most 2 MiB.
ZSTD_MAX_WINDOW = 1 << 23
_READ = 1 << 20


class TooLarge(ValueError):
    """The decompressed body is larger than the cap."""


def _zstd() -> ModuleType | None:
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard


def encodings() -> tuple[str, ...]:
    """The content encodings this side can use, preferred first."""
    return (ZSTD, GZIP) if _zstd() is not None else (GZIP,)


def compress(body: bytes, encoding: str) -> bytes:
    """``body`` in ``encoding`` (``zstd``, ``gzip`` or ``identity``)."""
    if encoding == IDENTITY:
        return body
    if encoding == GZIP:
        return gzip.compress(body, GZIP_LEVEL)
    z = _zstd()
    if encoding != ZSTD or z is None:
        raise ValueError(f"cannot compress as {encoding!r}")
    return bytes(z.ZstdCompressor(level=ZSTD_LEVEL).compress(body))


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body decompressed, at most ``limit`` bytes (TooLarge past it; ValueError when the
    encoding is unknown or the data corrupt, truncated or followed by anything)."""
    encoding = encoding.strip().lower()
    if encoding in ("", IDENTITY):
        if len(body) > limit:
            raise TooLarge("body too large")
        return body
    if encoding == GZIP:
        d = zlib.decompressobj(wbits=31)
        try:
            out = d.decompress(body, limit + 1)
        except zlib.error as e:
            raise ValueError(f"bad gzip data: {e}") from None
        if len(out) > limit or d.unconsumed_tail:
            raise TooLarge(f"decompressed body larger than {limit} bytes")
        return out
    z = _zstd() if encoding == ZSTD else None
    if z is None:
        raise ValueError(f"unsupported Content-Encoding {encoding[:20]!r} "
                         f"(use {' or '.join(encodings())})")
    return _unzstd(z, body, limit)


def _unzstd(z: ModuleType, body: bytes, limit: int) -> bytes:
    d = z.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
    chunks: list[bytes] = []
    total = 0
    try:
        # one frame, read a bounded piece at a time: memory stays within the cap
        with d.stream_reader(body, read_across_frames=False) as reader:
            while True:
                chunk = reader.read(min(_READ, limit + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > limit:
                    raise TooLarge(f"decompressed body larger than {limit} bytes")
        # the frame decompresses within the cap: check it is whole and alone
        check = d.decompressobj()
        check.decompress(body)
    except z.ZstdError as e:
        raise ValueError(f"bad zstd data: {e}") from None
    if not check.eof or check.unused_data:
        raise ValueError("bad zstd data: truncated frame or data after it")
    return b"".join(chunks)
