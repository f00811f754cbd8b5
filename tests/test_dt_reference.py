"""Our DT takes the same training step as d3rlpy's DecisionTransformer (tiny scale).

`benchmarks/dt_lockstep.py` runs this at the paper's scale; here a tiny model on a tiny dataset keeps
the check in the suite, so that a change to the loss, optimizer, schedule, clip or batch layout
that makes our update differ from the reference's cannot land silently.
"""

import sys
from pathlib import Path

import pytest

pytest.importorskip("d3rlpy")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import dt_lockstep  # noqa: E402

from offline_zoo.testing import tiny_dataset  # noqa: E402

TINY = {"hidden_size": 16, "n_layer": 2, "n_head": 2, "context_len": 5, "batch_size": 8, "warmup_steps": 4}


@pytest.fixture(scope="module")
def dataset():
    return tiny_dataset("continuous", n_episodes=10, episode_len=12, seed=1)


@pytest.mark.parametrize("fast_kernels", [False, True], ids=["standard-kernels", "fast-kernels"])
def test_same_batches_give_the_same_updates_as_d3rlpy(dataset, fast_kernels):
    rec = dt_lockstep.lockstep(dataset, seed=0, steps=12, denominator="all_positions", check_steps=(1, 12), verbose=False,
                               fast_kernels=fast_kernels, **TINY)
    assert rec["initial_param_gap"] == 0.0  # the copy is exact
    assert rec["max_rel_loss_gap"] < 1e-4, rec["max_rel_loss_gap"]
    assert rec["update_gap"]["1"] < 1e-3 and rec["update_gap"]["12"] < 1e-2, rec["update_gap"]


def test_our_loss_denominator_is_the_only_difference(dataset):
    """Our default loss divides by the real positions, d3rlpy's by all B*K: larger by B*K / n_real."""
    ours = dt_lockstep.lockstep(dataset, seed=0, steps=3, denominator="real_positions", check_steps=(3,), verbose=False, **TINY)
    ratios = [o / d for o, d in zip(ours["losses_ours"], ours["losses_d3rlpy"])]
    # windows of 5 in 12-step episodes: a batch with a left-padded window gives a larger loss; every
    # window has a real step, so the ratio is at most K
    assert all(1 - 1e-5 <= r <= 5 for r in ratios) and max(ratios) > 1.01, ratios
