"""C-MOVE over the channel (pacscommon.moves): what goes on the wire."""

from io import BytesIO

from pynetdicom.dsutils import decode
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelMove,
)

from pacscommon import commands as cmd
from pacscommon.moves import retrieve_status


def test_a_move_request_names_its_destination_in_tag_order() -> None:
    raw = cmd.encode_request(
        cmd.C_MOVE_RQ,
        7,
        StudyRootQueryRetrieveInformationModelMove,
        cmd.PRIORITY_MEDIUM,
        move_destination="LISTENER",
    )
    odd = cmd.encode_request(
        cmd.C_MOVE_RQ, 8, "1.2.3", cmd.PRIORITY_MEDIUM, move_destination="ABC"
    )

    ds = decode(BytesIO(raw), True, True)
    tags = [int(e.tag) for e in ds]
    assert tags == sorted(tags)
    assert ds.CommandGroupLength == len(raw) - 12
    assert ds.CommandField == 0x0021 and ds.MessageID == 7
    assert ds.AffectedSOPClassUID == StudyRootQueryRetrieveInformationModelMove
    assert ds.MoveDestination == "LISTENER" and ds.Priority == 0
    assert ds.CommandDataSetType == 0x0000
    assert decode(BytesIO(odd), True, True).MoveDestination == "ABC"
    assert len(odd) % 2 == 0


def test_a_response_status_carries_the_counts_it_has() -> None:
    command = cmd.decode_command(cmd.encode_response(0x0021, 3, 0xFF00, "1.2.3")[12:])
    command[cmd.NumberOfRemainingSuboperations] = (5).to_bytes(2, "little")
    command[cmd.NumberOfCompletedSuboperations] = (2).to_bytes(2, "little")
    command[cmd.NumberOfFailedSuboperations] = b""
    command[cmd.ErrorComment] = b"slow disk "

    status = retrieve_status(command)

    assert status.Status == 0xFF00
    assert status.NumberOfRemainingSuboperations == 5
    assert status.NumberOfCompletedSuboperations == 2
    assert "NumberOfFailedSuboperations" not in status
    assert "NumberOfWarningSuboperations" not in status
    assert status.ErrorComment == "slow disk"
