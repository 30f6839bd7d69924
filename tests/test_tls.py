"""TLS on every link: pacsquery and pacsretrieve to Orthanc, Orthanc to the
listener, with certificates made for the test and signed by a CA of its own."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from test_pacsretrieve import received_files, truth_rows, write_results

import pacscommon.network  # noqa: F401 - closes the sockets of failed connects
from corpus import Corpus, pixel_data_bytes
from listener import Listener, program
from orthanc import OrthancServer, free_port
from pacscommon.tls import TlsFiles, client_context
from pacsretrieve.main import main, parser


def openssl(*args: str, cwd: Path) -> None:
    """Run openssl, failing the test if it fails."""
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue(folder: Path, name: str) -> None:
    """Make ``name.pem`` and ``name.key``, signed by ``ca.pem``, for 127.0.0.1."""
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={name}",
        cwd=folder,
    )
    openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        cwd=folder,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and certificates for Orthanc, the listener and a client."""
    folder = tmp_path_factory.mktemp("pki")
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        cwd=folder,
    )
    for name in ("orthanc", "listener", "client"):
        issue(folder, name)
    return folder


class TlsOrthanc(OrthancServer):
    """An Orthanc that speaks only TLS, and sends to the listener over TLS."""

    def __init__(self, workdir: Path, pki: Path, listener_port: int) -> None:
        super().__init__(workdir)
        self.pki = pki
        self.listener_port = listener_port

    def config(self) -> dict[str, Any]:
        config = super().config()
        config.update(
            DicomTlsEnabled=True,
            DicomTlsCertificate=str(self.pki / "orthanc.pem"),
            DicomTlsPrivateKey=str(self.pki / "orthanc.key"),
            DicomTlsTrustedCertificates=str(self.pki / "ca.pem"),
            DicomTlsRemoteCertificateRequired=False,
            DicomModalities={
                "CHRISLOCAL": {
                    "AET": "CHRISLOCAL",
                    "Host": "127.0.0.1",
                    "Port": self.listener_port,
                    "UseDicomTls": True,
                },
            },
        )
        return config


@pytest.fixture(scope="module")
def tls_pacs(
    tmp_path_factory: pytest.TempPathFactory, pki: Path, corpus: Corpus
) -> Iterator[tuple[TlsOrthanc, Listener]]:
    """A TLS Orthanc holding the corpus, and a TLS listener it sends to."""
    port = free_port()
    work = tmp_path_factory.mktemp("tls")
    listener = Listener(
        work / "data",
        port,
        "CHRISLOCAL",
        "--tls-cert",
        str(pki / "listener.pem"),
        "--tls-key",
        str(pki / "listener.key"),
    )
    with TlsOrthanc(work / "orthanc", pki, port) as orthanc, listener:
        for item in corpus:
            orthanc.upload(item.path)
        yield orthanc, listener


def tls_args(pki: Path) -> list[str]:
    """Return the client options that trust the test CA."""
    return ["--tls", "--tls-ca", str(pki / "ca.pem")]


def test_query_and_retrieve_over_tls(
    tls_pacs: tuple[TlsOrthanc, Listener], pki: Path, tmp_path: Path, corpus: Corpus
) -> None:
    orthanc, listener = tls_pacs
    port = ["--pacs-port", str(orthanc.dicom_port)]
    (tmp_path / "in").mkdir()
    query = subprocess.run(
        [
            program("pacsquery"),
            *port,
            *tls_args(pki),
            "--patient-id",
            "1CT1",
            str(tmp_path / "in"),
            str(tmp_path / "q"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert query.returncode == 0, query.stderr
    rows = json.loads((tmp_path / "q" / "success.txt").read_text())["data"]
    assert {r["PatientID"]["value"] for r in rows} == {"1CT1"}
    pull = subprocess.run(
        [
            program("pacsretrieve"),
            *port,
            *tls_args(pki),
            "--data-location",
            str(listener.data_dir),
            str(tmp_path / "q"),
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pull.returncode == 0, pull.stderr
    expected = sum(1 for c in corpus if c.PatientID == "1CT1")
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == expected
    assert "over TLS" in listener.log_text()


def test_get_over_tls(
    tls_pacs: tuple[TlsOrthanc, Listener], pki: Path, tmp_path: Path, corpus: Corpus
) -> None:
    """C-GET's own message loop reads and writes the TLS connection."""
    orthanc, _ = tls_pacs
    rows = [r for r in truth_rows(orthanc.series_truth()) if r["PatientID"] == "1CT1"]
    inputdir, outputdir = tmp_path / "in", tmp_path / "out"
    inputdir.mkdir()
    write_results(inputdir, rows)
    options = parser.parse_args(
        ["--pacs-port", str(orthanc.dicom_port), *tls_args(pki), "--mode", "get"]
    )
    assert main(options, inputdir, outputdir) == 0
    originals = {c.SOPInstanceUID: c.path for c in corpus if c.PatientID == "1CT1"}
    received = received_files(outputdir)
    assert set(received) == set(originals) and len(received) == 6
    for sop, path in received.items():
        assert pixel_data_bytes(path) == pixel_data_bytes(originals[sop])


def test_untrusted_pacs_certificate_is_refused(
    tls_pacs: tuple[TlsOrthanc, Listener], tmp_path: Path
) -> None:
    orthanc, _ = tls_pacs
    (tmp_path / "in").mkdir()
    # The system's CAs do not know the test CA.
    done = subprocess.run(
        [
            program("pacsquery"),
            "--pacs-port",
            str(orthanc.dicom_port),
            "--tls",
            str(tmp_path / "in"),
            str(tmp_path / "q"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "TLS" in errors[0] and "--tls-ca" in errors[0]
    assert not (tmp_path / "q" / "success.txt").exists()


def test_plain_client_on_a_tls_port_fails(
    tls_pacs: tuple[TlsOrthanc, Listener], tmp_path: Path
) -> None:
    orthanc, _ = tls_pacs
    (tmp_path / "in").mkdir()
    done = subprocess.run(
        [
            program("pacsquery"),
            "--pacs-port",
            str(orthanc.dicom_port),
            "--dimse-timeout",
            "5",
            str(tmp_path / "in"),
            str(tmp_path / "q"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert not (tmp_path / "q" / "success.txt").exists()


def test_listener_requires_client_certificates_when_given_a_ca(
    pki: Path, tmp_path: Path
) -> None:
    port = free_port()
    with Listener(
        tmp_path / "d",
        port,
        "CHRISLOCAL",
        "--tls-cert",
        str(pki / "listener.pem"),
        "--tls-key",
        str(pki / "listener.key"),
        "--tls-ca",
        str(pki / "ca.pem"),
    ):
        ae = AE(ae_title="CLIENT")
        ae.add_requested_context(Verification)
        anonymous = client_context(TlsFiles(ca=str(pki / "ca.pem")))
        assoc = ae.associate(
            "127.0.0.1", port, ae_title="CHRISLOCAL", tls_args=(anonymous, "127.0.0.1")
        )
        assert not assoc.is_established
        known = client_context(
            TlsFiles(
                ca=str(pki / "ca.pem"),
                cert=str(pki / "client.pem"),
                key=str(pki / "client.key"),
            )
        )
        assoc = ae.associate(
            "127.0.0.1", port, ae_title="CHRISLOCAL", tls_args=(known, "127.0.0.1")
        )
        assert assoc.is_established
        assert int(assoc.send_c_echo().Status) == 0
        assoc.release()


def test_tls_options_without_tls_are_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    done = subprocess.run(
        [
            program("pacsquery"),
            "--pacs-port",
            str(free_port()),
            "--tls-ca",
            "ca.pem",
            str(tmp_path / "in"),
            str(tmp_path / "q"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: --tls-ca and --tls-cert need --tls")


def test_listener_with_a_missing_certificate_exits_two(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            program("pacslistener"),
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "d"),
            "--tls-cert",
            str(tmp_path / "nope.pem"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: TLS files cannot be used")
