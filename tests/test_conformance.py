"""Every registered algorithm passes the same conformance check, on each action space it supports."""

import pytest

import offline_zoo as oz
from offline_zoo.testing import TinyImageEnv, check_algo, tiny_dataset

ALGOS = [a for a in oz.list_algos() if not a.endswith("-test")]


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
@pytest.mark.parametrize("name", ALGOS)
def test_conformance(name, kind):
    algo_class = oz.get_algo(name)
    dataset = tiny_dataset(kind)
    if kind not in algo_class.action_spaces:
        with pytest.raises(ValueError, match=f"does not support {kind} actions"):
            algo_class(dataset)
        return
    check_algo(algo_class, dataset, env_fn=TinyImageEnv if kind == "discrete" else None)


def test_the_paper_algorithms_are_registered():
    for name in ("lamo", "dt", "wiki-rl"):
        assert oz.get_algo(name).name in ALGOS
