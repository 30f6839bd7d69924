"""The images and the compose stack, for real: Orthanc, the listener, the seed job
and both plugins in their containers, every one on the host's network and
talking over 127.0.0.1 only.

``scripts/images`` builds the images (nothing is pulled); the stack comes up
with ``docker-compose.yml`` and ``docker-compose.host.yml`` on free ports, under
a project name of its own, and goes down with its volumes at the end, whatever
happened. What arrives in the plugins' output directories is compared with what
Orthanc's REST API says it holds.

Without a docker engine these tests skip, with the reason; in CI (``CI=true``)
they fail instead.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pydicom.datadict
import pytest

from orthanc import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).parent.parent
PREFIX = "localhost/fnndsc"
VERSION = "0.1.0"
PLUGINS = ("pacsquery", "pacsretrieve")
IMAGES = {name: f"{PREFIX}/{name}:{VERSION}" for name in (*PLUGINS, "pacslistener")}
ORTHANC_IMAGE = "local/orthanc:1.10.1-bookworm"
#: The listener's user in its image; the plugins read its files as that user.
LISTENER_UID = "1001"
#: An arbitrary UID, as ChRIS runs plugins.
CHRIS_UID = "4242:4242"
#: What the seed job loads (docker/seed/seed.py).
SEED_INSTANCES = 12
SEED_SERIES = 6
TRAILING_PADDING = 0xFFFCFFFC


def in_ci() -> bool:
    """Tell whether this is a CI run, where a missing engine is a failure."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail in CI."""
    if in_ci():
        pytest.fail(f"docker tests cannot run in CI: {reason}")
    pytest.skip(reason)


def run(
    argv: list[str], timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root; return it, whatever its status."""
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def check(proc: subprocess.CompletedProcess[str]) -> str:
    """Return the command's stdout; fail with its output unless it exited 0."""
    assert proc.returncode == 0, (
        f"{' '.join(proc.args)} exited {proc.returncode}\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc.stdout


def engine_answers() -> bool:
    """Tell whether the docker engine answers."""
    return run(["docker", "info"], timeout=30).returncode == 0


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Make sure the engine runs; start one (and stop it after) if it does not."""
    if shutil.which("docker") is None:
        unavailable("docker is not installed (PACS_WITH_DOCKER=1 scripts/setup)")
    if engine_answers():
        yield
        return
    if shutil.which("dockerd") is None or os.geteuid() != 0:
        unavailable("the docker engine is not running and cannot be started here")
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            ["dockerd", "--bridge=none", "--iptables=false"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while not engine_answers():
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            unavailable(f"dockerd did not start; see {log}")
        time.sleep(0.5)
    yield
    daemon.terminate()
    daemon.wait(timeout=60)


@pytest.fixture(scope="session")
def images(docker_engine: None) -> None:
    """Build the base and program images from this checkout (cached)."""
    check(run(["scripts/images"], timeout=600))
    for image in (*IMAGES.values(), ORTHANC_IMAGE):
        check(run(["docker", "image", "inspect", image]))


def compose_command() -> list[str]:
    """Return Compose v2 when the docker CLI has it, else docker-compose 1.x."""
    if run(["docker", "compose", "version"]).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    unavailable("neither 'docker compose' nor docker-compose is installed")
    raise AssertionError("unreachable")


@dataclass
class Stack:
    """The compose stack under test, and how to reach it."""

    project: str
    env: dict[str, str]
    work: Path
    http_port: int
    dicom_port: int
    listener_port: int

    def compose(self, *args: str, timeout: float = 180) -> str:
        """Run a compose command on this stack; return its stdout."""
        argv = [
            *compose_command(),
            "-p",
            self.project,
            "-f",
            "docker-compose.yml",
            "-f",
            "docker-compose.host.yml",
            *args,
        ]
        return check(run(argv, timeout=timeout, env=self.env))

    def rest(self, path: str) -> Any:
        """GET from Orthanc's REST API, on 127.0.0.1."""
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=30) as rsp:
            return json.loads(rsp.read())

    def rest_post(self, path: str, body: bytes) -> Any:
        """POST to Orthanc's REST API; return its JSON answer."""
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, data=body, timeout=30) as rsp:
            return json.loads(rsp.read())

    def rest_bytes(self, path: str) -> bytes:
        """GET raw bytes from Orthanc's REST API."""
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=30) as rsp:
            data: bytes = rsp.read()
        return data

    @property
    def data_volume(self) -> str:
        """The listener's data volume, as Compose names it."""
        return f"{self.project}_pacsdata"


def shared_dir(path: Path) -> Path:
    """Make a directory that any UID in a container can write."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


@pytest.fixture(scope="module")
def stack(images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Bring the stack up on free loopback ports, seed it; down -v after."""
    work = tmp_path_factory.mktemp("compose")
    for name in ("query-in", "query", "retrieve"):
        shared_dir(work / name)
    ports = {
        "PACS_ORTHANC_HTTP_PORT": free_port(),
        "PACS_ORTHANC_DICOM_PORT": free_port(),
        "PACS_LISTENER_PORT": free_port(),
    }
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}}
    env["PACS_WORK"] = str(work)
    stack = Stack(
        project=f"pacstest{os.getpid()}",
        env=env,
        work=work,
        http_port=ports["PACS_ORTHANC_HTTP_PORT"],
        dicom_port=ports["PACS_ORTHANC_DICOM_PORT"],
        listener_port=ports["PACS_LISTENER_PORT"],
    )
    try:
        stack.compose("up", "-d", "--no-build", "orthanc", "pacslistener")
        seeded = stack.compose("run", "--rm", "seed")
        assert f"holds all {SEED_INSTANCES} instances" in seeded, seeded
        wait_healthy(stack, "pacslistener")
        yield stack
    finally:
        logs = run(
            [
                *compose_command(),
                "-p",
                stack.project,
                "-f",
                "docker-compose.yml",
                "-f",
                "docker-compose.host.yml",
                "logs",
                "--no-color",
            ],
            env=env,
        )
        print(logs.stdout[-20000:])
        stack.compose("down", "-v", "--remove-orphans")


def wait_healthy(stack: Stack, service: str, seconds: float = 60) -> None:
    """Wait until a service's container reports healthy (its own healthcheck)."""
    container = stack.compose("ps", "-q", service).strip()
    deadline = time.monotonic() + seconds
    while True:
        state = check(
            run(["docker", "inspect", "-f", "{{.State.Health.Status}}", container])
        ).strip()
        if state == "healthy":
            return
        assert time.monotonic() < deadline, f"{service} is {state} after {seconds} s"
        time.sleep(0.5)


def docker_run(image: str, *args: str, user: str, mounts: list[str]) -> str:
    """Run a plugin as ChRIS does: its own command, host network, mounted dirs."""
    volumes = [opt for mount in mounts for opt in ("-v", mount)]
    argv = ["docker", "run", "--rm", "--pull", "never", "--network", "host"]
    return check(run([*argv, "--user", user, *volumes, image, *args], timeout=300))


def orthanc_series(stack: Stack) -> dict[str, set[str]]:
    """Return ``{SeriesInstanceUID: {SOPInstanceUID, ...}}`` as Orthanc holds them."""
    held: dict[str, set[str]] = {}
    for series in stack.rest("/series?expand"):
        uid = series["MainDicomTags"]["SeriesInstanceUID"]
        instances = stack.rest(f"/series/{series['ID']}/instances")
        held[uid] = {i["MainDicomTags"]["SOPInstanceUID"] for i in instances}
    return held


def read_quietly(path: Path) -> pydicom.Dataset:
    """Read a file; some of pydicom's sample files make it warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pydicom.dcmread(path)


def read_quietly_bytes(data: bytes) -> pydicom.Dataset:
    """Read a Part-10 file held in memory, as ``read_quietly`` does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pydicom.dcmread(io.BytesIO(data))


@pytest.mark.parametrize("name", PLUGINS)
def test_chris_plugin_info_describes_the_image(images: None, name: str) -> None:
    image = IMAGES[name]
    out = check(
        run(
            [
                "docker",
                "run",
                "--rm",
                "--pull",
                "never",
                "--network",
                "none",
                "--user",
                CHRIS_UID,
                image,
                "chris_plugin_info",
                "--dock-image",
                image,
            ]
        )
    )
    info = json.loads(out)
    assert info["name"] == name and info["dock_image"] == image
    assert info["type"] == "ds" and info["selfexec"] == name
    assert info["version"] == VERSION
    for key in ("min_memory_limit", "min_cpu_limit", "min_number_of_workers"):
        assert key in info
    flags = {p["flag"]: p for p in info["parameters"]}
    assert flags["--pacs-host"]["default"] == "127.0.0.1"
    assert flags["--pacs-port"]["type"] == "int"
    assert flags["--pacs-port"]["default"] == 4242
    for param in info["parameters"]:
        assert param["type"] in ("str", "int", "float", "bool"), param
        assert param["optional"] and "default" in param, param


def test_images_run_without_root(images: None) -> None:
    users = {
        name: check(
            run(["docker", "image", "inspect", "-f", "{{.Config.User}}", image])
        ).strip()
        for name, image in IMAGES.items()
    }
    assert users == {
        "pacsquery": "1001:0",
        "pacsretrieve": "1001:0",
        "pacslistener": "dicom",
    }


def test_seed_loaded_orthanc(stack: Stack) -> None:
    stats = stack.rest("/statistics")
    assert stats["CountInstances"] == SEED_INSTANCES
    assert stats["CountSeries"] == SEED_SERIES
    # Seeding again stores nothing new.
    assert f"holds all {SEED_INSTANCES}" in stack.compose("run", "--rm", "seed")
    assert stack.rest("/statistics")["CountInstances"] == SEED_INSTANCES


def test_query_then_retrieve_in_containers(stack: Stack, tmp_path: Path) -> None:
    query_in = shared_dir(tmp_path / "in")
    query_out = shared_dir(tmp_path / "query")
    retrieve_out = shared_dir(tmp_path / "retrieve")
    pacs = [
        "--pacs-host",
        "127.0.0.1",
        "--pacs-port",
        str(stack.dicom_port),
        "--called-aet",
        "ORTHANC",
        "--calling-aet",
        "CHRISLOCAL",
    ]
    docker_run(
        IMAGES["pacsquery"],
        "pacsquery",
        *pacs,
        "/incoming",
        "/outgoing",
        user=CHRIS_UID,
        mounts=[f"{query_in}:/incoming:ro", f"{query_out}:/outgoing"],
    )
    held = orthanc_series(stack)
    results = json.loads((query_out / "success.txt").read_text())
    rows = {r["SeriesInstanceUID"]["value"]: r for r in results["data"]}
    assert results["status"] == "success" and results["complete"] is True
    assert set(rows) == set(held)
    for uid, row in rows.items():
        assert int(row["NumberOfSeriesRelatedInstances"]["value"]) == len(held[uid])

    # Readers need read access only (DESIGN): the plugin reads the listener's
    # volume as another user than the listener's, as ChRIS would run it.
    docker_run(
        IMAGES["pacsretrieve"],
        "pacsretrieve",
        *pacs,
        "--move-destination",
        "CHRISLOCAL",
        "--data-location",
        "/data",
        "/incoming",
        "/outgoing",
        user=CHRIS_UID,
        mounts=[
            f"{stack.data_volume}:/data:ro",
            f"{query_out}:/incoming:ro",
            f"{retrieve_out}:/outgoing",
        ],
    )
    assert_arrived(stack, retrieve_out, held)


def assert_arrived(stack: Stack, outputdir: Path, held: dict[str, set[str]]) -> None:
    """Check the output holds exactly Orthanc's instances, data sets included."""
    arrived: dict[str, set[str]] = {}
    for path in sorted(outputdir.rglob("*.dcm")):
        ds = read_quietly(path)
        uid = str(ds.SOPInstanceUID)
        arrived.setdefault(str(ds.SeriesInstanceUID), set()).add(uid)
        [found] = stack.rest_post("/tools/lookup", uid.encode())
        original = read_quietly_bytes(
            stack.rest_bytes(f"/instances/{found['ID']}/file")
        )
        # PS3.5 7.1: DataSetTrailingPadding has no meaning; a C-STORE drops it.
        original.pop(TRAILING_PADDING, None)
        syntaxes = (
            ds.file_meta.TransferSyntaxUID,
            original.file_meta.TransferSyntaxUID,
        )
        assert differences(ds, original) == [], (path.name, syntaxes)
    assert arrived == held
    report = json.loads((outputdir / "report.json").read_text())
    assert report, "report.json is empty"


def differences(ds: pydicom.Dataset, original: pydicom.Dataset) -> list[str]:
    """Return the keywords or tags of the elements whose values differ.

    Values only: a sender may correct a VR (DCMTK sends encapsulated pixel data
    that a file gave as OW as OB, the bytes unchanged).
    """
    tags = set(ds.keys()) | set(original.keys())
    with warnings.catch_warnings():
        # Values are converted when first read: the sample files' warnings.
        warnings.simplefilter("ignore", UserWarning)
        return sorted(
            pydicom.datadict.keyword_for_tag(tag) or str(tag)
            for tag in tags
            if tag not in ds
            or tag not in original
            or ds[tag].value != original[tag].value
        )


def test_plugins_run_as_compose_services(stack: Stack) -> None:
    # The plugin services' own wiring: environment, volumes, default arguments.
    for name in ("query", "retrieve"):
        for child in (stack.work / name).iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    stack.compose(
        "run", "--rm", "pacsquery", "--modality", "CT", "/incoming", "/outgoing"
    )
    results = json.loads((stack.work / "query" / "success.txt").read_text())
    [row] = results["data"]
    assert row["Modality"]["value"] == "CT"
    stack.compose("run", "--rm", "pacsretrieve")
    held = orthanc_series(stack)
    uid = row["SeriesInstanceUID"]["value"]
    assert_arrived(stack, stack.work / "retrieve", {uid: held[uid]})
