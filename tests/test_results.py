"""The rows of success.txt: written line by line, read back as they were."""

import json

from pacscommon.results import encode_rows, row_lines

ROWS = [
    {
        "PatientName": 'Müller^Jürgen\\A "B"',
        "StudyDate": "",
        "PatientID": "P\u2028\x01",
    },
    {
        "PatientName": "山田^太郎=やまだ^たろう",
        "StudyDate": "20240102",
        "PatientID": "7",
    },
]


def test_each_row_line_is_what_json_dumps_writes_for_its_item() -> None:
    items = encode_rows(ROWS)

    lines = row_lines(ROWS)

    assert lines == [json.dumps(item, ensure_ascii=False) for item in items]
    assert [json.loads(line) for line in lines] == items


def test_an_extra_cell_comes_after_uid() -> None:
    extras = [
        {"query": {"label": "query", "tag": 0, "value": f"line {n}"}} for n in (2, 3)
    ]
    items = encode_rows(ROWS)
    for item, extra in zip(items, extras, strict=True):
        item.update(extra)

    lines = row_lines(ROWS, extras)

    assert lines == [json.dumps(item, ensure_ascii=False) for item in items]
    assert list(json.loads(lines[1]))[-2:] == ["uid", "query"]
