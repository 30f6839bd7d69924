"""The exceptions of the PACS pull, and the exit code each one means.

::

    PullError                  base; ``exit_code`` and a one-line message
    ├── InputError             exit 2: bad option, configuration or input
    │   ├── ResultsFileError   a results file missing or malformed
    │   └── SelectionError     a selection that matches nothing
    └── OperationError         exit 1: an operation failed, wholly or partly
        ├── PeerUnreachable    no TCP connection to the peer
        ├── AssociationRejected
        ├── AssociationAborted  aborted, dropped, or no answer in time
        ├── StatusError        a DIMSE failure status
        └── Interrupted        stopped by a signal (SIGTERM, SIGINT)

Helpers raise these; only a program's ``main`` turns them into an exit code and
an ``error:`` line.
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2


class PullError(Exception):
    """Something the user must hear about, in one line."""

    exit_code = EXIT_FAILED


class InputError(PullError):
    """A bad option value, configuration or input file."""

    exit_code = EXIT_INPUT


class ResultsFileError(InputError):
    """A results file that is missing or cannot be read."""


class SelectionError(InputError):
    """A selection of series that matches nothing."""


class OperationError(PullError):
    """An operation that failed, wholly or partly."""

    exit_code = EXIT_FAILED


class PeerUnreachable(OperationError):
    """No TCP connection could be made to the peer."""


class AssociationRejected(OperationError):
    """The peer rejected the association."""


class AssociationAborted(OperationError):
    """The association was aborted, dropped, or the peer did not answer."""


class StatusError(OperationError):
    """The peer answered a request with a failure status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Interrupted(OperationError):
    """The program was told to stop (SIGTERM, SIGINT) before it was done."""


def unexpected(exc: Exception) -> OperationError:
    """Wrap an error that no step foresaw, for its one ``error:`` line."""
    error = OperationError(
        f"unexpected {type(exc).__name__}: {exc}; rerun with --log-level DEBUG "
        "for the traceback"
    )
    error.__cause__ = exc
    return error
