"""Starting the storage SCP: what a listening address or port that fails means."""

import errno
import socket
from pathlib import Path
from typing import NoReturn

import pytest
from pynetdicom import AE

from pacscommon.errors import InputError, OperationError
from pacscommon.server import ServerConfig, start_server
from pacscommon.storage import StorageEngine


def refuse_with(error: OSError) -> object:
    """Return a stand-in for ``AE.make_server`` that raises ``error``."""

    def make_server(*_: object, **__: object) -> NoReturn:
        raise error

    return make_server


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (socket.gaierror(-2, "Name or service not known"), InputError),
        (OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"), InputError),
        (OSError(errno.EADDRINUSE, "Address already in use"), OperationError),
    ],
)
def test_a_bad_address_is_input_and_a_taken_port_an_operation_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: OSError,
    expected: type[Exception],
) -> None:
    monkeypatch.setattr(AE, "make_server", refuse_with(error))
    data = tmp_path / "data"

    with pytest.raises(expected) as caught:
        start_server(StorageEngine(data), ServerConfig("ME", 11112, "pacs.invalid"))

    message = str(caught.value)
    assert ("address 'pacs.invalid'" in message) == (expected is InputError)
    assert ("port" in message) == (expected is OperationError)
    assert not data.exists()
