"""TLS for DICOM associations (PS3.15 B.1): contexts built from PEM files.

``ssl`` is imported when a context is made: a program without TLS options
does not pay for loading it at start-up.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pacscommon.errors import InputError

if TYPE_CHECKING:
    import ssl


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files of one side of a TLS connection; empty means not given."""

    ca: str = ""
    cert: str = ""
    key: str = ""


def client_context(files: TlsFiles) -> "ssl.SSLContext":
    """Return a context that verifies the peer against ``files.ca`` (or the system)."""
    import ssl

    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=files.ca or None
        )
        if files.cert:
            context.load_cert_chain(files.cert, files.key or None)
    except (OSError, ssl.SSLError) as exc:
        raise InputError(f"TLS files cannot be used: {exc}; check --tls-*") from exc
    return context


def server_context(files: TlsFiles) -> "ssl.SSLContext":
    """Return a server context; with ``files.ca``, clients must show a certificate."""
    import ssl

    if not files.cert:
        raise InputError("TLS needs --tls-cert (and --tls-key unless it holds the key)")
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(files.cert, files.key or None)
        if files.ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(files.ca)
    except (OSError, ssl.SSLError) as exc:
        raise InputError(f"TLS files cannot be used: {exc}; check --tls-*") from exc
    return context
