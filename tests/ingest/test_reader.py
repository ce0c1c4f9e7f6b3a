"""The reader: every input form (JSON, JSONL, gzip, OONI's archive layout, stdin), bad lines."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from probe.errors import UsageError
from probe.ingest.reader import BadInput, Document, read_paths

DOCS = [{"test_name": "web_connectivity", "n": i} for i in range(3)]


def _jsonl(docs: list[dict]) -> str:
    return "".join(json.dumps(d) + "\n" for d in docs)


def _origins(items) -> list[str]:
    return [i.origin for i in items]


@pytest.mark.parametrize("name, content, expected", [
    ("one.json", json.dumps(DOCS[0], indent=1), [("one.json:1", 0)]),
    ("one-line.json", json.dumps(DOCS[0]), [("one-line.json:1", 0)]),
    ("many.jsonl", _jsonl(DOCS), [("many.jsonl:1", 0), ("many.jsonl:2", 1),
                                  ("many.jsonl:3", 2)]),
    ("blank-lines.jsonl", "\n" + _jsonl(DOCS[:1]) + "\n\n" + _jsonl(DOCS[1:2]),
     [("blank-lines.jsonl:2", 0), ("blank-lines.jsonl:5", 1)]),
])
def test_files_plain_and_gzip(tmp_path: Path, name: str, content: str,
                              expected: list[tuple[str, int]]) -> None:
    for suffix, write in (("", lambda p, t: p.write_text(t)),
                          (".gz", lambda p, t: p.write_bytes(gzip.compress(t.encode())))):
        path = tmp_path / (name + suffix)
        write(path, content)
        items = list(read_paths([str(path)]))
        assert all(isinstance(i, Document) for i in items)
        assert [(i.origin.rsplit("/", 1)[1].replace(".gz:", ":"), i.doc["n"])
                for i in items] == expected


def test_a_bad_line_mid_file_is_reported_and_the_rest_read(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(_jsonl(DOCS[:1]) + "{not json\n" + "[1, 2]\n" + _jsonl(DOCS[1:]))
    items = list(read_paths([str(path)]))
    assert [type(i).__name__ for i in items] == ["Document", "BadInput", "BadInput",
                                                 "Document", "Document"]
    bad = [i for i in items if isinstance(i, BadInput)]
    assert bad[0].origin == f"{path}:2" and bad[0].problem.startswith("not JSON")
    assert bad[1].origin == f"{path}:3" and "not a measurement object" in bad[1].problem


def test_a_broken_gzip_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(b"not gzip at all")
    (item,) = list(read_paths([str(path)]))
    assert isinstance(item, BadInput) and "cannot read" in item.problem


def test_an_archive_directory_is_walked_in_sorted_order(tmp_path: Path) -> None:
    layout = {
        "raw/20240515/00/KZ/webconnectivity/b.jsonl.gz": DOCS[2:3],
        "raw/20240514/23/KZ/webconnectivity/b.jsonl.gz": DOCS[1:2],
        "raw/20240514/23/KZ/webconnectivity/a.jsonl.gz": DOCS[0:1],
    }
    for rel, docs in layout.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(gzip.compress(_jsonl(docs).encode()))
    (tmp_path / "raw" / "README.txt").write_text("not a measurement")
    items = list(read_paths([str(tmp_path / "raw")]))
    assert [i.doc["n"] for i in items] == [0, 1, 2]


def test_stdin(tmp_path: Path) -> None:
    items = list(read_paths(["-"], stdin=io.StringIO(_jsonl(DOCS))))
    assert _origins(items) == ["-:1", "-:2", "-:3"]
    pretty = list(read_paths(["-"], stdin=io.StringIO(json.dumps(DOCS[1], indent=2))))
    assert [(i.origin, i.doc["n"]) for i in pretty] == [("-:1", 1)]


def test_a_missing_path_is_a_usage_error_before_anything_is_read(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        list(read_paths([str(tmp_path / "nope.jsonl")]))
    with pytest.raises(UsageError, match="nothing to import"):
        list(read_paths([]))


def test_reading_is_lazy(tmp_path: Path) -> None:
    """A generator: the first document arrives before the rest of the file is parsed."""
    path = tmp_path / "x.jsonl"
    path.write_text(_jsonl(DOCS) + "{broken\n")
    it = read_paths([str(path)])
    first = next(it)
    assert isinstance(first, Document) and first.doc["n"] == 0


@pytest.mark.parametrize("text", [
    '{"a": 1, "b": [1.5, "x\\u00e9", null, true], "c": {"d": "\\ud83d\\ude00"}}',
    '{"n": NaN, "i": -Infinity}',  # json takes these, orjson does not
    '{"lone": "\\ud800"}',  # a lone surrogate escape
    '{"dup": 1, "dup": 2}',
    '[1, 2]', '"text"', '{"a": ', "not json",
])
def test_parse_decodes_exactly_as_the_json_module(text: str) -> None:
    from probe.ingest.reader import parse
    got = parse(text, "f:1")
    try:
        want = json.loads(text)
    except ValueError:
        assert isinstance(got, BadInput) and got.problem.startswith("not JSON")
        return
    if isinstance(want, dict):
        assert isinstance(got, Document)
        assert json.dumps(got.doc) == json.dumps(want)  # NaN != NaN: compare the text
    else:
        assert isinstance(got, BadInput)


def test_an_integer_beyond_64_bits_decodes_as_a_float() -> None:
    from probe.ingest.reader import parse
    got = parse('{"asn": 123456789012345678901234567890, "port": 18446744073709551615}', "f:1")
    assert isinstance(got, Document)
    assert got.doc == {"asn": 1.2345678901234568e29, "port": 18446744073709551615}
