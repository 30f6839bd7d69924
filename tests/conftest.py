"""Shared fixtures: the seed corpus and a real Orthanc seeded with it.

``corpus`` and ``orthanc`` import as top-level modules because pytest puts this
directory on ``sys.path`` (rootdir-relative conftest, default "prepend" import
mode); with ``--import-mode=importlib`` set ``pythonpath = ["tests"]``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import chris_plugin._registration
import pytest

from corpus import Corpus, build_corpus
from orthanc import LISTENER_AET, SELF_AET, OrthancServer, free_port

__all__ = ["free_port"]


# NOTE: chris_plugin 0.4 keeps one decorated main per process, as a plugin
# image has one; the tests import both plugins, so each registration replaces
# the last. Remove once chris_plugin allows several.
def _register_latest(details: chris_plugin._registration.PluginDetails) -> None:
    chris_plugin._registration._memory[:] = [details]


sys.modules["chris_plugin.chris_plugin"].register = _register_latest


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """Build the seed corpus once per session."""
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def listener_port() -> int:
    """Reserve the port Orthanc knows for CHRISLOCAL (nothing listens yet)."""
    return free_port()


@pytest.fixture(scope="session")
def self_port() -> int:
    """Reserve the port Orthanc knows for MOVESELF (nothing listens yet)."""
    return free_port()


@pytest.fixture(scope="session")
def orthanc(
    tmp_path_factory: pytest.TempPathFactory,
    corpus: Corpus,
    listener_port: int,
    self_port: int,
) -> Iterator[OrthancServer]:
    """Run one Orthanc for the session, holding exactly the corpus.

    Shared by every test: do not clear it or change its modalities; start an
    ``OrthancServer`` of your own for that.
    """
    modalities = {
        LISTENER_AET: (LISTENER_AET, "127.0.0.1", listener_port),
        SELF_AET: (SELF_AET, "127.0.0.1", self_port),
    }
    with OrthancServer(
        tmp_path_factory.mktemp("orthanc"), modalities=modalities
    ) as server:
        seed_orthanc(server, corpus)
        yield server


def seed_orthanc(server: OrthancServer, corpus: Corpus) -> None:
    """Upload every corpus file; fail unless Orthanc then holds them all."""
    for item in corpus:
        answer = server.upload(item.path)
        if answer.get("Status") != "Success":
            pytest.fail(f"Orthanc did not store {item.path.name}: {answer}")
    count = server.instance_count()
    if count != len(corpus):
        pytest.fail(f"Orthanc holds {count} instances, the corpus {len(corpus)}")
