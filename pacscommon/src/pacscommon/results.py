"""The results file: the rows pacsquery writes and pacsretrieve reads.

``success.txt`` is a JSON object whose ``data`` is a flat list of series rows;
each row maps a DICOM keyword to ``{"label", "tag", "value"}`` and has a
``uid`` entry holding its position. The flat JSON list that ChRIS's newer query
plugin writes (one object per series, keyword to value) is read too.
"""

import json
from collections.abc import Iterable, Mapping, Sequence
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from pacscommon.errors import ResultsFileError

SUCCESS_FILE = "success.txt"
ERROR_FILE = "error.txt"


def tag_text(keyword: str) -> str:
    """Return a keyword's tag as ``gggg,eeee`` in lower-case hex."""
    from pydicom.datadict import tag_for_keyword  # not needed to read rows

    tag = tag_for_keyword(keyword)
    if tag is None:
        raise ValueError(f"{keyword} is not a DICOM keyword")
    return f"{tag >> 16:04x},{tag & 0xFFFF:04x}"


def encode_rows(rows: Iterable[Mapping[str, str]]) -> list[dict[str, Any]]:
    """Return rows of keyword to text as the ``data`` list of ``success.txt``."""
    data = []
    tags: dict[str, str] = {}
    for position, row in enumerate(rows):
        item: dict[str, Any] = {}
        for kw, value in row.items():
            tag = tags.get(kw) or tags.setdefault(kw, tag_text(kw))
            item[kw] = {"label": kw, "tag": tag, "value": value}
        item["uid"] = {"label": "uid", "tag": 0, "value": position}
        data.append(item)
    return data


def row_lines(
    rows: Iterable[Mapping[str, str]],
    extras: Sequence[Mapping[str, Any]] | None = None,
) -> list[str]:
    """Return each item of :func:`encode_rows` as one line of JSON text.

    The same text as ``json.dumps(item, ensure_ascii=False)`` (with an extra
    row's keys after ``uid``), written from per-column templates with each
    value escaped by the json module's C function: for thousands of rows, a
    fraction of the time that building and dumping the items takes.
    """
    prefixes: dict[str, str] = {}
    lines = []
    for position, row in enumerate(rows):
        cells = []
        for kw, value in row.items():
            prefix = prefixes.get(kw) or prefixes.setdefault(kw, _cell_prefix(kw))
            cells.append(f"{prefix}{encode_basestring(value)}}}")
        cells.append(f'"uid": {{"label": "uid", "tag": 0, "value": {position}}}')
        if extras is not None:
            cells.append(json.dumps(extras[position], ensure_ascii=False)[1:-1])
        lines.append("{" + ", ".join(cells) + "}")
    return lines


def _cell_prefix(keyword: str) -> str:
    """Return the JSON text of a cell up to its value."""
    name = encode_basestring(keyword)
    return f'{name}: {{"label": {name}, "tag": "{tag_text(keyword)}", "value": '


def load_rows(path: Path) -> list[dict[str, str]]:
    """Read a results file of either format into rows of keyword to text."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError as exc:
        raise ResultsFileError(
            f"results file {path} not found; run pacsquery first, or name the "
            "file with --series-file"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsFileError(f"results file {path} cannot be read: {exc}") from exc
    try:
        document = json.loads(text)
    except RecursionError as exc:
        raise ResultsFileError(
            f"results file {path} is nested too deeply to be a results file; "
            "rerun pacsquery to write it again"
        ) from exc
    except json.JSONDecodeError as exc:
        raise ResultsFileError(
            f"results file {path} is not valid JSON ({exc.msg} at line "
            f"{exc.lineno}); rerun pacsquery to write it again"
        ) from exc
    return _rows_of(document, path)


def _rows_of(document: Any, path: Path) -> list[dict[str, str]]:
    """Return the rows of a parsed results document, or say what is wrong."""
    if isinstance(document, list):
        items = document
    elif isinstance(document, dict) and isinstance(document.get("data"), list):
        items = document["data"]
    else:
        raise ResultsFileError(
            f"results file {path} holds neither a 'data' list nor a list of "
            "series; is it a pacsquery results file?"
        )
    rows = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise ResultsFileError(f"results file {path}: row {n} is not an object")
        rows.append({str(k): _text_of(v) for k, v in item.items()})
    return rows


def _text_of(value: Any) -> str:
    """Return the text of a row's value, in either format."""
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    if value is None:
        return ""
    if isinstance(value, list):
        return "\\".join(_text_of(v) for v in value)
    return str(value)
