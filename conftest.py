"""Test-session settings, shared by tests/ and the docstring examples (``--doctest-modules``):
one torch thread (tiny models on a shared 2-core machine run faster so), offline-zoo's caches in a
per-session temporary directory, and docstring examples run in their own temporary directory."""

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


@pytest.fixture(autouse=True)
def _doctest_in_tmp_dir(request, tmp_path, monkeypatch):
    # docstring examples may write files ("lamo.zip", "runs/..."): keep them out of the checkout
    if type(request.node).__name__ == "DoctestItem":
        monkeypatch.chdir(tmp_path)
    yield
