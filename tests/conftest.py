"""Test-session settings: one torch thread (tiny models on a shared 2-core machine run faster so),
and offline-zoo's caches in a per-session temporary directory."""

import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread_and_private_home(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    old = os.environ.get("OFFLINE_ZOO_HOME")
    os.environ["OFFLINE_ZOO_HOME"] = str(tmp_path_factory.mktemp("offline_zoo_home"))
    yield
    torch.set_num_threads(threads)
    if old is None:
        os.environ.pop("OFFLINE_ZOO_HOME", None)
    else:
        os.environ["OFFLINE_ZOO_HOME"] = old
