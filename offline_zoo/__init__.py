"""offline-zoo: pre-trained-language-model agents and value-based agents for offline RL, one interface.

    >>> from offline_zoo import LaMo
    >>> algo = LaMo("hopper-medium", ratio=0.1).learn()  # doctest: +SKIP
    >>> algo.evaluate().score  # doctest: +SKIP

Every algorithm and task is registered by name:

    >>> from offline_zoo import get_algo, get_task
    >>> get_algo("lamo") is LaMo, get_task("hopper-medium").env_id
    (True, 'Hopper-v5')

Heavy dependencies (torch, transformers, d3rlpy) are imported on first use of a name that needs them.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

from .tasks import Task, get_task, list_tasks, normalized_score, register_task  # noqa: E402

_LAZY = {
    "Dataset": "offline_zoo.data",
    "Episode": "offline_zoo.data",
    "load_dataset": "offline_zoo.data",
    "check_data_available": "offline_zoo.data",
    "DatasetError": "offline_zoo.data",
    "DataUnavailableError": "offline_zoo.data",
    "OfflineAlgo": "offline_zoo.algos",
    "RolloutState": "offline_zoo.algos",
    "ConfigError": "offline_zoo.algos",
    "list_algos": "offline_zoo.algos",
    "get_algo": "offline_zoo.algos",
    "register_algo": "offline_zoo.algos",
    "EvaluationResult": "offline_zoo.evaluation",
    "make_env": "offline_zoo.envs",
    "LaMo": "offline_zoo.algos",
    "DT": "offline_zoo.algos",
    "WikiRL": "offline_zoo.algos",
    "CQL": "offline_zoo.algos",
    "IQL": "offline_zoo.algos",
    "TD3PlusBC": "offline_zoo.algos",
    "BCQ": "offline_zoo.algos",
    "NFQ": "offline_zoo.algos",
    "BC": "offline_zoo.algos",
}

__all__ = ["Task", "get_task", "list_tasks", "normalized_score", "register_task", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'offline_zoo' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
