"""Command-line options shared by the three programs, and their environment.

Precedence is the command line, then an environment variable named after the
option (``PACSQUERY_PACS_HOST`` for ``--pacs-host``), then the built-in default.
The environment is applied by putting its values on the command line *before*
the user's own arguments, so that argparse's last-one-wins keeps the user's
word, and the parser's defaults (which ``chris_plugin_info`` prints) stay the
built-in ones.
"""

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Callable, Mapping

from pacscommon.errors import EXIT_INPUT, InputError
from pacscommon.logs import report_error
from pacscommon.peers import Peer, Timeouts, check_ae_title, check_port
from pacscommon.tls import TlsFiles

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_SKIP = {"help", "saveinputmeta", "saveoutputmeta"}
_KINDS: dict[object, str] = {int: "a whole number", float: "a number"}


def check_seconds(value: float, flag: str) -> float:
    """Return ``value`` if it is a positive number of seconds, else raise."""
    if not value > 0:
        raise InputError(f"{flag} {value} is not a positive number of seconds")
    return float(value)


def env_name(prefix: str, dest: str) -> str:
    """Return the environment variable for option ``dest``."""
    return f"{prefix}_{dest.upper()}"


def environment_args(
    parser: argparse.ArgumentParser, prefix: str, environ: Mapping[str, str]
) -> list[str]:
    """Return the arguments that the environment variables in ``environ`` stand for."""
    args: list[str] = []
    for action in parser._actions:
        if not action.option_strings or action.dest in _SKIP:
            continue
        value = environ.get(env_name(prefix, action.dest))
        if value is None:
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:
            if value.strip().lower() in _TRUE:
                args.append(flag)
            elif value.strip().lower() not in _FALSE:
                parser.error(f"{env_name(prefix, action.dest)}={value!r}: use 1 or 0")
        else:
            check_environment_value(
                parser, action, env_name(prefix, action.dest), value
            )
            args.append(f"{flag}={value}")
    return args


def check_environment_value(
    parser: argparse.ArgumentParser, action: argparse.Action, name: str, value: str
) -> None:
    """Exit as argparse does, naming the variable, if ``value`` is not of its type.

    Read from the command line, argparse would name the option instead.
    """
    if not callable(action.type):
        return
    try:
        action.type(value)
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        kind = _KINDS.get(action.type, "a valid value")
        parser.error(f"{name}={value!r} is not {kind}; correct it or unset it")


def missing_input_dir(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """Return the error of a plugin's INPUTDIR or OUTPUTDIR that cannot serve.

    chris_plugin checks the input directory itself, but with exit 1 and no hint,
    and makes the output directory with a traceback if it cannot; both are bad
    input (exit 2), said before anything is asked of the PACS.
    """
    if {"-h", "--help", "--version"} & set(argv):
        return None
    try:
        # argparse reports its own errors when the plugin parses: not twice.
        with contextlib.redirect_stderr(io.StringIO()):
            _, rest = parser.parse_known_args(argv)
    except SystemExit:
        return None
    if any(a.startswith("-") for a in rest):
        return None  # an unknown option: argparse names it when the plugin parses
    if rest and not os.path.isdir(rest[0]):
        return (
            f"input directory {rest[0]} is not a directory; give the "
            "directory that holds the input (it may be empty for pacsquery)"
        )
    if len(rest) > 1:
        return unwritable_output_dir(rest[1])
    return None


def unwritable_output_dir(path: str) -> str | None:
    """Return why ``path`` cannot be (made into) a writable directory, if so."""
    # The nearest folder that exists must take the new one, or be it.
    existing = os.path.abspath(path)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return (
            f"output directory {path}: {existing} is not a directory; give a "
            "directory the results can be written in"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        return (
            f"output directory {path}: {existing} is not writable by this user; "
            "give a directory the results can be written in"
        )
    return None


def run_plugin(
    parser: argparse.ArgumentParser, prefix: str, main: Callable[[], object]
) -> int:
    """Run a plugin's decorated ``main`` as its console script; return the code.

    The environment's options go first on the command line, and an input
    directory that is not one is reported here, as bad input.
    """
    sys.argv[1:] = apply_environment(parser, prefix, sys.argv[1:])
    problem = missing_input_dir(parser, sys.argv[1:])
    if problem:
        report_error(InputError(problem))
        return EXIT_INPUT
    code = main()
    return code if isinstance(code, int) else 0


def apply_environment(
    parser: argparse.ArgumentParser, prefix: str, argv: list[str]
) -> list[str]:
    """Return ``argv`` with the program's environment variables put first."""
    return environment_args(parser, prefix, os.environ) + argv


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Add where the PACS is, what the AEs are called, and the timeouts."""
    add = parser.add_argument
    add(
        "--serverIP",
        "--pacs-host",
        dest="pacs_host",
        type=str,
        default="127.0.0.1",
        help="host name or address of the PACS",
    )
    add(
        "--serverPort",
        "--pacs-port",
        dest="pacs_port",
        type=int,
        default=4242,
        help="DICOM port of the PACS",
    )
    add(
        "--aec",
        "--called-aet",
        dest="called_aet",
        type=str,
        default="ORTHANC",
        help="AE title of the PACS (the called AE)",
    )
    add(
        "--aet",
        "--calling-aet",
        dest="calling_aet",
        type=str,
        default="CHRISLOCAL",
        help="our AE title (the calling AE), as the PACS knows it",
    )
    add(
        "--connect-timeout",
        dest="connect_timeout",
        type=float,
        default=10.0,
        help="seconds to wait for the TCP connection",
    )
    add(
        "--dimse-timeout",
        dest="dimse_timeout",
        type=float,
        default=60.0,
        help="seconds to wait for each answer from the PACS",
    )
    add(
        "--log-level",
        dest="log_level",
        type=str,
        default="INFO",
        help="DEBUG, INFO, WARNING or ERROR",
    )
    add_tls_options(parser, client=True)


def add_tls_options(parser: argparse.ArgumentParser, client: bool) -> None:
    """Add the TLS options: a client's, or a server's (TLS when a cert is given)."""
    add = parser.add_argument
    if client:
        add("--tls", dest="tls", action="store_true", help="speak TLS to the PACS")
    add(
        "--tls-ca",
        dest="tls_ca",
        type=str,
        default="",
        help="PEM file of the CAs that sign the peer's certificate"
        + ("" if client else "; clients must then show one"),
    )
    add(
        "--tls-cert",
        dest="tls_cert",
        type=str,
        default="",
        help="PEM file of our certificate"
        + (" (for a PACS that asks for one)" if client else "; turns TLS on"),
    )
    add(
        "--tls-key",
        dest="tls_key",
        type=str,
        default="",
        help="PEM file of our private key, if not in --tls-cert",
    )


def tls_from(options: argparse.Namespace, client: bool) -> TlsFiles | None:
    """Return the TLS files the options name, or ``None`` for plain TCP."""
    files = TlsFiles(
        ca=getattr(options, "tls_ca", ""),
        cert=getattr(options, "tls_cert", ""),
        key=getattr(options, "tls_key", ""),
    )
    wanted = getattr(options, "tls", False) if client else bool(files.cert)
    if not wanted:
        if client and (files.ca or files.cert):
            raise InputError("--tls-ca and --tls-cert need --tls")
        return None
    return files


def peer_from(options: argparse.Namespace) -> Peer:
    """Return the PACS the options name, checked."""
    return Peer(
        host=options.pacs_host,
        port=check_port(options.pacs_port, "--pacs-port"),
        called_aet=check_ae_title(options.called_aet, "--called-aet"),
        calling_aet=check_ae_title(options.calling_aet, "--calling-aet"),
        tls=tls_from(options, client=True),
    )


def timeouts_from(options: argparse.Namespace) -> Timeouts:
    """Return the timeouts the options name, or raise if one is not positive."""
    dimse = check_seconds(options.dimse_timeout, "--dimse-timeout")
    return Timeouts(
        connect=check_seconds(options.connect_timeout, "--connect-timeout"),
        acse=max(dimse, 30.0),
        dimse=dimse,
        network=max(dimse, 60.0),
    )
