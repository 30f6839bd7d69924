"""The storage engine on bytes no sender should send."""

from pathlib import Path

import pytest

from pacscommon.storage import STORE_CANNOT_UNDERSTAND, InstanceRejected, StorageEngine


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff" * 8,  # found by the fuzzer: pydicom raised struct.error
        b"\x02\x00\x10\x00UI\xff\xff",
        b"\x08\x00\x16\x00" + b"\xff" * 3,
    ],
)
def test_unreadable_data_sets_are_rejected(tmp_path: Path, body: bytes) -> None:
    engine = StorageEngine(tmp_path / "data")
    engine.prepare()
    path = engine.incoming / "received.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + body)
    with pytest.raises(InstanceRejected) as caught:
        engine.store(path)
    assert caught.value.status == STORE_CANNOT_UNDERSTAND
    stored = [
        p for p in (tmp_path / "data").rglob("*.dcm") if ".incoming" not in p.parts
    ]
    assert stored == []
    assert not list((tmp_path / "data" / ".index").iterdir())
