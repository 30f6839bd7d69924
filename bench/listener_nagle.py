"""Run pacslistener with Nagle's algorithm left on (benchmark only).

pacslistener turns TCP_NODELAY on for every accepted socket (``EVT_CONN_OPEN``);
this wrapper drops that handler before the server starts, so the benchmark can
tell what the setting is worth to a receiver. Options as for ``pacslistener``.
"""

import sys

import pacscommon.server
from pacslistener.main import cli

if __name__ == "__main__":
    pacscommon.server.NODELAY_HANDLERS = []  # type: ignore[misc]
    sys.exit(cli())
