"""Start a real Orthanc on free loopback ports and drive it over its REST API.

Orthanc is Debian's package (``/usr/sbin/Orthanc``, 1.10.1). Each server gets a
configuration written by the test into a directory of its own, with its storage
and index inside it, no plugins and no Lua scripts.

What Orthanc 1.10.1 does with peers it does not know, as observed by
``tests/test_infra.py`` (``allow_unknown_aet=False``, the default):

- An unknown calling AE title is *accepted* at association time (so are its
  C-ECHO and C-STORE, which ``DicomAlwaysAllowEcho/Store`` allow from anyone).
  Its first C-FIND, C-MOVE or C-GET gets no response at all: Orthanc logs
  ``Rejected Find request from remote DICOM modality with AET "..."`` and sends
  an A-ABORT (source: DUL service-user, no reason). pynetdicom's
  ``send_c_find`` then yields a single ``(Dataset(), None)``: an empty status.
  DCMTK's findscu logs ``0006:0317 Peer aborted Association`` and still exits 0.
- A C-MOVE from a known calling AE to a destination AE title that is not in
  ``DicomModalities`` gets one final C-MOVE-RSP, status 0xC000 (Failure: unable
  to process) with all sub-operation counts 0, and no pending response; Orthanc
  logs ``Unknown modality for AET: ...``. DCMTK's movescu exits non-zero.

Orthanc 1.10.1 has no option for its listening address: its DICOM and its HTTP
server bind every interface. ``RemoteAccessAllowed`` false makes the HTTP server
refuse clients that are not on the loopback; the tests only use 127.0.0.1.

Starting takes about 0.1 s; a clean stop about 3.5 s (Orthanc's HTTP and DICOM
servers each wait out a poll timeout), so tests share one server where they can.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypedDict

LOGGER = logging.getLogger(__name__)

ORTHANC_BINARY = Path("/usr/sbin/Orthanc")
LOOPBACK = "127.0.0.1"

#: AE title (and DicomModalities name) of the listener the shared Orthanc knows.
LISTENER_AET = "CHRISLOCAL"
#: AE title (and name) of pacsretrieve's in-process SCP that it knows too.
SELF_AET = "MOVESELF"

#: ``{name: (AE title, host, port)}``, as Orthanc's ``DicomModalities`` holds it.
Modalities = Mapping[str, tuple[str, str, int]]


class OrthancError(RuntimeError):
    """Orthanc did not start, died, or answered a REST call with an error."""


class SeriesTruth(TypedDict):
    """What Orthanc holds for one series, keyed by DICOM keywords."""

    SeriesInstanceUID: str
    StudyInstanceUID: str
    PatientID: str
    PatientName: str
    Modality: str
    SeriesDescription: str
    SeriesNumber: str
    StudyDate: str
    StudyDescription: str
    AccessionNumber: str
    NumberOfSeriesRelatedInstances: int
    SOPInstanceUIDs: list[str]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


class OrthancServer:
    """A real Orthanc process on loopback ports, configured by the test.

    ``allow_unknown_aet`` sets ``DicomAlwaysAllowFind/Move/Get``: false (the
    default) means a calling AE title must be in ``DicomModalities`` to query or
    retrieve; see the module docstring for what Orthanc does otherwise.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        aet: str = "ORTHANC",
        modalities: Modalities | None = None,
        allow_unknown_aet: bool = False,
        scu_timeout: int = 10,
        default_encoding: str = "Utf8",
        dicom_port: int | None = None,
        http_port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.aet = aet
        self.modalities = dict(modalities or {})
        self.allow_unknown_aet = allow_unknown_aet
        self.scu_timeout = scu_timeout
        self.default_encoding = default_encoding
        self.dicom_port = dicom_port or free_port()
        self.http_port = http_port or free_port()
        self.startup_timeout = startup_timeout
        # A name of its own tells this Orthanc's /system from any other's.
        self.name = f"test-{aet}-{uuid.uuid4().hex[:12]}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        # Never go through a proxy, whatever the environment says.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def url(self) -> str:
        """Return the base URL of the REST API."""
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def config_path(self) -> Path:
        """Return where the configuration file is written."""
        return self.workdir / "orthanc.json"

    @property
    def log_path(self) -> Path:
        """Return the file that receives Orthanc's stdout and stderr."""
        return self.workdir / "orthanc.log"

    def config(self) -> dict[str, Any]:
        """Return the configuration this server runs with."""
        always_allow = self.allow_unknown_aet
        return {
            "Name": self.name,
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "Plugins": [],
            "LuaScripts": [],
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "WebDavEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": False,
            "DicomCheckModalityHost": False,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": always_allow,
            "DicomAlwaysAllowFindWorklist": always_allow,
            "DicomAlwaysAllowMove": always_allow,
            "DicomAlwaysAllowGet": always_allow,
            "DicomModalities": {
                name: [aet, host, port]
                for name, (aet, host, port) in self.modalities.items()
            },
            "DicomModalitiesInDatabase": False,
            "DicomScuTimeout": self.scu_timeout,
            "DefaultEncoding": self.default_encoding,
            "UnknownSopClassAccepted": True,
            "SaveJobs": False,
        }

    def start(self) -> None:
        """Write the configuration, start Orthanc and wait until it answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        # DCMTK (which Orthanc's DICOM layer is built on) leaves Nagle's algorithm
        # on unless TCP_NODELAY is set in its environment; with it on, every
        # instance Orthanc sends on loopback stalls ~44 ms on the delayed ACK.
        env = dict(os.environ, TCP_NODELAY="1")
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [str(ORTHANC_BINARY), str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        LOGGER.info(
            "Orthanc %s starting on DICOM port %d, HTTP port %d",
            self.aet,
            self.dicom_port,
            self.http_port,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        """Poll /system and the DICOM port until both answer, or fail."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise OrthancError(
                    f"Orthanc exited with code {self._process.returncode} "
                    f"at startup:\n{self.log_tail()}"
                )
            if self._answers_http() and self._accepts_dicom():
                return
            time.sleep(0.05)
        raise OrthancError(
            f"Orthanc not ready after {self.startup_timeout} s:\n{self.log_tail()}"
        )

    def _answers_http(self) -> bool:
        """Return whether GET /system answers, from this very Orthanc."""
        try:
            system = self.get_json("/system")
        except (OSError, OrthancError):
            return False
        return bool(system.get("Name") == self.name)

    def _accepts_dicom(self) -> bool:
        """Return whether the DICOM port accepts a TCP connection."""
        try:
            with socket.create_connection((LOOPBACK, self.dicom_port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate Orthanc and wait for it to exit (kill it if it hangs)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                LOGGER.warning("Orthanc %s ignored SIGTERM; killing it", self.aet)
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines Orthanc wrote to its log."""
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> OrthancServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- REST ------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> bytes:
        """Send one REST request and return the response body."""
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", content_type)
        try:
            with self._opener.open(req, timeout=60) as rsp:
                data: bytes = rsp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read().decode(errors="replace")
            raise OrthancError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        return data

    def get_json(self, path: str) -> Any:
        """GET a REST resource and decode its JSON."""
        return json.loads(self.request("GET", path))

    def upload(self, path: Path) -> dict[str, Any]:
        """Store one DICOM file (POST /instances); return Orthanc's answer."""
        body = Path(path).read_bytes()
        answer = self.request("POST", "/instances", body, "application/dicom")
        result: dict[str, Any] = json.loads(answer)
        return result

    def add_modality(self, name: str, aet: str, port: int) -> None:
        """Declare a peer at 127.0.0.1 at runtime (PUT /modalities/{name})."""
        peer = {"AET": aet, "Host": LOOPBACK, "Port": port}
        self.request("PUT", f"/modalities/{name}", json.dumps(peer).encode())
        self.modalities[name] = (aet, LOOPBACK, port)

    def remove_modality(self, name: str) -> None:
        """Forget a peer at runtime (DELETE /modalities/{name})."""
        self.request("DELETE", f"/modalities/{name}")
        self.modalities.pop(name, None)

    def instance_count(self) -> int:
        """Return how many instances Orthanc holds."""
        count: int = self.get_json("/statistics")["CountInstances"]
        return count

    def instance_file(self, orthanc_id: str) -> bytes:
        """Return the stored DICOM file of one instance, by its Orthanc ID."""
        return self.request("GET", f"/instances/{orthanc_id}/file")

    def clear(self) -> None:
        """Delete every patient, and so everything Orthanc holds."""
        for patient in self.get_json("/patients"):
            self.request("DELETE", f"/patients/{patient}")

    def series_truth(self) -> dict[str, SeriesTruth]:
        """Return what Orthanc holds, per SeriesInstanceUID."""
        studies = {s["ID"]: s for s in self.get_json("/studies?expand")}
        sop_uids = {
            i["ID"]: i["MainDicomTags"]["SOPInstanceUID"]
            for i in self.get_json("/instances?expand")
        }
        truth: dict[str, SeriesTruth] = {}
        for series in self.get_json("/series?expand"):
            record = _series_record(series, studies[series["ParentStudy"]])
            record["SOPInstanceUIDs"] = sorted(sop_uids[i] for i in series["Instances"])
            record["NumberOfSeriesRelatedInstances"] = len(series["Instances"])
            truth[record["SeriesInstanceUID"]] = record
        return truth


def _series_record(series: dict[str, Any], study: dict[str, Any]) -> SeriesTruth:
    """Merge the main DICOM tags of a series, its study and its patient."""
    tags = series["MainDicomTags"]
    study_tags = study["MainDicomTags"]
    patient_tags = study["PatientMainDicomTags"]
    return SeriesTruth(
        SeriesInstanceUID=tags["SeriesInstanceUID"],
        StudyInstanceUID=study_tags["StudyInstanceUID"],
        PatientID=patient_tags.get("PatientID", ""),
        # NOTE: the REST API writes every component group of a PN that has
        # more than one ("A=B" comes back as "A=B="); C-FIND and the stored
        # file do not, so the empty trailing groups are dropped here.
        PatientName=patient_tags.get("PatientName", "").rstrip("="),
        Modality=tags.get("Modality", ""),
        SeriesDescription=tags.get("SeriesDescription", ""),
        SeriesNumber=tags.get("SeriesNumber", ""),
        StudyDate=study_tags.get("StudyDate", ""),
        StudyDescription=study_tags.get("StudyDescription", ""),
        AccessionNumber=study_tags.get("AccessionNumber", ""),
        NumberOfSeriesRelatedInstances=0,
        SOPInstanceUIDs=[],
    )
