"""Run the storage engine as a DICOM storage SCP."""

import errno
import ipaddress
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

from pynetdicom import AE, Association, _config
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from pacscommon.acceptor import RECEIVER_ATTR, ReceivingRequestHandler
from pacscommon.errors import InputError, OperationError
from pacscommon.handlers import StorageHandlers
from pacscommon.incoming import attach
from pacscommon.network import NODELAY_HANDLERS
from pacscommon.receiver import Receiver
from pacscommon.storage import StorageEngine
from pacscommon.tls import TlsFiles, server_context

logger = logging.getLogger(__name__)

# Large enough that a PDU costs few trips through pynetdicom's Python loops,
# small enough that one PDU costs little memory.
DEFAULT_MAX_PDU = 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    """How the storage SCP presents itself and what it accepts."""

    aet: str
    port: int
    bind: str = "0.0.0.0"
    max_pdu: int = DEFAULT_MAX_PDU
    max_associations: int = 64
    require_called_aet: bool = False
    allowed_calling_aets: tuple[str, ...] = ()
    tls: TlsFiles | None = None


def build_ae(config: ServerConfig) -> AE:
    """Return an AE that accepts every storage SOP class and C-ECHO."""
    # Every storage, private or unknown SOP class is accepted in the transfer
    # syntax the sender proposes first, and data sets stream to files.
    _config.UNRESTRICTED_STORAGE_SERVICE = True
    _config.STORE_RECV_CHUNKED_DATASET = True
    ae = AE(ae_title=config.aet)
    ae.add_supported_context(Verification)
    ae.maximum_pdu_size = config.max_pdu
    ae.maximum_associations = config.max_associations
    ae.require_called_aet = config.require_called_aet
    ae.require_calling_aet = list(config.allowed_calling_aets)
    ae.dimse_timeout = 120
    ae.network_timeout = 300
    return ae


def start_server(
    engine: StorageEngine, config: ServerConfig
) -> ThreadedAssociationServer:
    """Start serving in background threads; raise if the port cannot be had.

    The port is taken before the data directory is made ready, so that a run
    that cannot listen leaves nothing behind.
    """
    handlers = StorageHandlers(engine)
    ae = build_ae(config)
    attach(ae, engine.incoming_folder())
    server = bind_server(ae, handlers, config)
    try:
        engine.prepare()
    except BaseException:
        server.server_close()
        raise
    # Established associations are served by the receive loop.
    setattr(server, RECEIVER_ATTR, Receiver(handlers, engine.incoming_folder()))
    thread = threading.Thread(
        target=server.serve_forever, name=f"StorageSCP@{config.port}", daemon=True
    )
    thread.start()
    # The AE keeps the servers it started; the server's shutdown expects that.
    ae._servers.append(server)
    logger.info(
        "storage SCP %s listening on %s:%d%s",
        config.aet,
        config.bind,
        config.port,
        " over TLS" if config.tls else "",
    )
    return server


def bind_server(
    ae: AE, handlers: StorageHandlers, config: ServerConfig
) -> ThreadedAssociationServer:
    """Return a server holding ``config``'s address and port, not yet serving."""
    check_bind_address(config.bind)
    try:
        return ae.make_server(
            (config.bind, config.port),
            ssl_context=server_context(config.tls) if config.tls else None,
            evt_handlers=cast(Any, handlers.bindings() + list(NODELAY_HANDLERS)),
            server_class=ThreadedAssociationServer,
            request_handler=ReceivingRequestHandler,
        )
    except socket.gaierror as exc:
        raise bad_address(config.bind, exc.strerror or str(exc)) from exc
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise bad_address(config.bind, "not an address of this machine") from exc
        raise OperationError(
            f"cannot listen on {config.bind}:{config.port}: {exc.strerror}; "
            "choose a free port or stop what holds it"
        ) from exc


def check_bind_address(address: str) -> None:
    """Raise an input error for an address written in numbers that is no address.

    Such an address is refused here rather than looked up as a host name.
    """
    if re.fullmatch(r"[0-9.]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*", address.strip()):
        try:
            ipaddress.ip_address(address.strip())
        except ValueError as exc:
            raise bad_address(address, "not an IP address") from exc


def bad_address(address: str, why: str) -> InputError:
    """Return the error of a listening address that cannot be used."""
    return InputError(
        f"cannot listen on address {address!r}: {why}; give an address of this "
        "machine, such as 127.0.0.1 (or 0.0.0.0 for every interface)"
    )


def stop_server(server: ThreadedAssociationServer, grace: float) -> int:
    """Stop accepting, let associations finish for ``grace`` s, abort the rest.

    Return how many associations had to be aborted.
    """
    server.shutdown()
    deadline = time.monotonic() + grace
    pause = 0.01
    while _in_flight(server) and time.monotonic() < deadline:
        # A back-off while the associations in flight finish.
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
    left = _in_flight(server)
    for assoc in left:
        assoc.abort()
    for assoc in left:
        assoc.join(5)
    if left:
        logger.warning(
            "aborted %d associations still open after %.0f s", len(left), grace
        )
    return len(left)


def _in_flight(server: ThreadedAssociationServer) -> list[Association]:
    """Return the established associations; idle connections do not count."""
    return [a for a in server.active_associations if a.is_established]
