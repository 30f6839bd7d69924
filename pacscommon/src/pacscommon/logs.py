"""Logging set-up and the one ``error:`` line a program ends with."""

import logging
import sys

from pacscommon.errors import InputError

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def setup_logging(level: str) -> None:
    """Send log lines to stderr at ``level``; keep pynetdicom's chatter quieter."""
    name = level.strip().upper()
    if name not in _LEVELS:
        raise InputError(f"--log-level {level!r} is not one of {', '.join(_LEVELS)}")
    logging.basicConfig(
        level=name,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # pynetdicom logs every PDU, and its own view of each failure, which the
    # programs report themselves in one line; show it only at DEBUG.
    pynetdicom_level = logging.DEBUG if name == "DEBUG" else logging.CRITICAL
    logging.getLogger("pynetdicom").setLevel(pynetdicom_level)
    # pydicom logs a decoder's failure with its traceback (a --preview of a
    # syntax it cannot decode); the caller says what failed in one line.
    pydicom_level = logging.DEBUG if name == "DEBUG" else logging.CRITICAL
    logging.getLogger("pydicom").setLevel(pydicom_level)
    quiet_pynetdicom()


def quiet_pynetdicom() -> None:
    """Bind pynetdicom's per-message log handlers only when DEBUG shows them.

    They cost time per message even when nothing is shown. Called by
    setup_logging and by :mod:`pacscommon.network` when it first loads
    pynetdicom, whichever comes last: a C-MOVE pull never loads it.
    """
    if "pynetdicom" not in sys.modules:
        return
    from pynetdicom import _config

    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    _config.LOG_HANDLER_LEVEL = "standard" if debug else "none"


def report_error(error: BaseException) -> None:
    """Write ``error: <message>`` on stderr; add the traceback at DEBUG."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger(__name__).debug("traceback", exc_info=error)
    sys.stderr.write(f"error: {error}\n")
    sys.stderr.flush()
