"""Algorithm configs: a dataclass per algorithm, filled from per-task YAML defaults and keywords.

Resolution order (later wins): dataclass defaults -> ``configs/<algo>.yaml`` ``default`` ->
the task's family (``mujoco``, ``atari``...) -> its domain (``hopper``) -> the exact task name
(``hopper-medium``) -> a user YAML file (``config_file=``, same layout or a flat mapping) -> keyword
overrides.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..tasks import Task

__all__ = ["AlgoConfig", "ConfigError", "resolve_config", "task_defaults"]


class ConfigError(TypeError):
    """Unknown or badly typed configuration field (a ``TypeError``).

    The message lists the valid fields and suggests the closest one.

    Examples:
        >>> resolve_config(AlgoConfig, "my-algo", None, {"bach_size": 8})
        Traceback (most recent call last):
        ...
        offline_zoo.algos.config.ConfigError: unknown AlgoConfig field(s) 'bach_size' in keyword arguments. ('bach_size': did you mean 'batch_size'?) Valid fields: batch_size, eval_episodes, n_steps, target_returns
    """


@dataclass
class AlgoConfig:
    """Fields every algorithm has.

    Attributes:
        n_steps: gradient steps of a full run (``learn()`` without ``n_steps``).
        batch_size: samples (windows or transitions) per gradient step.
        eval_episodes: episodes per target in ``evaluate()`` without ``n_episodes``.
        target_returns: return-to-go targets evaluated by sequence models (None: the task's).

    Examples:
        An algorithm's config extends it with its own fields:

        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class MyConfig(AlgoConfig):
        ...     learning_rate: float = 1e-3
        >>> MyConfig(batch_size=32).to_dict()
        {'n_steps': 100000, 'batch_size': 32, 'eval_episodes': 10, 'target_returns': None, 'learning_rate': 0.001}
    """

    n_steps: int = 100_000
    batch_size: int = 64
    eval_episodes: int = 10
    target_returns: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return dataclasses.asdict(self)


def _yaml_file(algo_name: str) -> Path | None:
    try:
        f = resources.files("offline_zoo") / "configs" / f"{algo_name}.yaml"
    except ModuleNotFoundError:  # pragma: no cover
        return None
    return Path(str(f)) if f.is_file() else None


def task_defaults(algo_name: str, task: Task | None, path: str | Path | None = None) -> dict[str, Any]:
    """The merged per-task defaults of an algorithm's YAML file (``default`` < family < domain < task).

    Args:
        algo_name: registry name of the algorithm; its file is ``offline_zoo/configs/<algo_name>.yaml``.
        task: the task whose sections apply (None: only ``default``).
        path: read this YAML file instead (sectioned like the shipped files, or a flat mapping).

    Returns:
        The merged values; empty when the algorithm has no YAML file.

    Examples:
        >>> from offline_zoo import get_task
        >>> task_defaults("dt", get_task("hopper-medium"))["target_returns"]
        [3600, 1800]
        >>> task_defaults("dt", get_task("breakout-medium"))["context_len"]  # the atari section
        30
        >>> from pathlib import Path
        >>> _ = Path("my.yaml").write_text("default: {batch_size: 8}\\nhopper: {batch_size: 4}\\n")
        >>> task_defaults("dt", get_task("hopper-medium"), path="my.yaml")
        {'batch_size': 4}
    """
    file = Path(path) if path is not None else _yaml_file(algo_name)
    if file is None:
        return {}
    data = yaml.safe_load(file.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file} must hold a mapping of sections (default, family, domain or task names)")
    keys = ["default"] + ([task.family, task.domain, task.name] if task is not None else [])
    sections = [k for k in data if isinstance(data[k], dict)]
    if sections and len(sections) == len(data):
        merged: dict[str, Any] = {}
        for k in dict.fromkeys(keys):
            merged.update(data.get(k) or {})
        return merged
    return dict(data)  # a flat user file


def resolve_config(config_class: type, algo_name: str, task: Task | None, overrides: Mapping[str, Any], config_file: str | Path | None = None):
    """Build the config of an algorithm for a task; unknown keys raise `ConfigError` listing valid ones.

    Args:
        config_class: the algorithm's config dataclass.
        algo_name: registry name of the algorithm (selects ``configs/<algo_name>.yaml``).
        task: the task whose YAML sections apply (None: only ``default``).
        overrides: keyword values; they win over every file.
        config_file: a user YAML file applied after the shipped defaults.

    Examples:
        >>> from dataclasses import dataclass
        >>> from pathlib import Path
        >>> from offline_zoo import get_task
        >>> @dataclass
        ... class MyConfig(AlgoConfig):
        ...     learning_rate: float = 1e-3
        >>> _ = Path("my.yaml").write_text("default: {learning_rate: 0.01}\\nmujoco: {batch_size: 32}\\n")
        >>> resolve_config(MyConfig, "my-algo", get_task("hopper-medium"), {"batch_size": 8}, config_file="my.yaml")
        MyConfig(n_steps=100000, batch_size=8, eval_episodes=10, target_returns=None, learning_rate=0.01)
    """
    valid = {f.name for f in fields(config_class)}
    values: dict[str, Any] = {}
    for origin, layer in (
        (f"configs/{algo_name}.yaml", task_defaults(algo_name, task)),
        (str(config_file), task_defaults(algo_name, task, config_file) if config_file else {}),
        ("keyword arguments", dict(overrides)),
    ):
        unknown = sorted(set(layer) - valid)
        if unknown:
            hints = "".join(
                f" ({u!r}: did you mean {m[0]!r}?)" for u in unknown if (m := difflib.get_close_matches(u, valid, n=1))
            )
            raise ConfigError(
                f"unknown {config_class.__name__} field(s) {', '.join(map(repr, unknown))} in {origin}.{hints} "
                f"Valid fields: {', '.join(sorted(valid))}"
            )
        values.update(layer)
    for f in fields(config_class):
        if f.name in values and isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    return config_class(**values)
