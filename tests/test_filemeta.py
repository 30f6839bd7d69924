"""The receive path's file meta encoder writes what pydicom writes."""

import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pynetdicom.dsutils import create_file_meta

from pacscommon.filemeta import create_fields, file_meta_bytes


@pytest.mark.parametrize(
    "sop_class, sop_instance, syntax",
    [
        ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5", "1.2.840.10008.1.2.1"),
        ("1.2.840.10008.5.1.4.1.1.7", "1.22", "1.2.840.10008.1.2.4.50"),
        ("1.2.840.10008.5.1.4.1.1.4", "1." + "9" * 62, "1.2.840.10008.1.2"),
        ("1.3.6.1.4.1.9590.100.1.2.1", "2.25.1", "1.2.840.10008.1.2.1.99"),
    ],
)
def test_same_bytes_as_pydicom(sop_class: str, sop_instance: str, syntax: str) -> None:
    reference = DicomBytesIO()
    reference.is_little_endian = True
    reference.is_implicit_VR = False
    meta = create_file_meta(
        sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=syntax
    )
    write_file_meta_info(reference, meta)
    fields = create_fields(
        sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=syntax
    )
    assert file_meta_bytes(fields) == reference.getvalue()
