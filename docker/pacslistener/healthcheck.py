#!/usr/bin/env python3
"""Exit 0 when the listener in this container answers a C-ECHO, else 1.

It asks 127.0.0.1 on ``PACSLISTENER_PORT`` (11113) as the listener's own AE
title ``PACSLISTENER_AET`` (CHRISLOCAL), the options the listener reads.
"""

import os
import sys

from pynetdicom import AE
from pynetdicom.sop_class import Verification

port = int(os.environ.get("PACSLISTENER_PORT", "11113"))
aet = os.environ.get("PACSLISTENER_AET", "CHRISLOCAL")
ae = AE(ae_title="HEALTHCHECK")
ae.add_requested_context(Verification)
ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 4
assoc = ae.associate("127.0.0.1", port, ae_title=aet)
if not assoc.is_established:
    sys.exit(f"healthcheck: no association with {aet} at 127.0.0.1:{port}")
try:
    status = assoc.send_c_echo()
finally:
    assoc.release()
ok = status is not None and status.get("Status") == 0x0000
sys.exit(0 if ok else f"healthcheck: C-ECHO to {aet} failed: {status}")
