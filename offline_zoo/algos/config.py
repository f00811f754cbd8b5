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
    """Unknown or badly typed configuration field."""


@dataclass
class AlgoConfig:
    """Fields every algorithm has.

    Attributes:
        n_steps: gradient steps of a full run (``learn()`` without ``n_steps``).
        batch_size: samples (windows or transitions) per gradient step.
        eval_episodes: episodes per target in ``evaluate()`` without ``n_episodes``.
        target_returns: return-to-go targets evaluated by sequence models (None: the task's).
    """

    n_steps: int = 100_000
    batch_size: int = 64
    eval_episodes: int = 10
    target_returns: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _yaml_file(algo_name: str) -> Path | None:
    try:
        f = resources.files("offline_zoo") / "configs" / f"{algo_name}.yaml"
    except ModuleNotFoundError:  # pragma: no cover
        return None
    return Path(str(f)) if f.is_file() else None


def task_defaults(algo_name: str, task: Task | None, path: str | Path | None = None) -> dict[str, Any]:
    """The merged per-task defaults of an algorithm's YAML file (``default`` < family < domain < task)."""
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
    """Build the config of an algorithm for a task; unknown keys raise :class:`ConfigError` listing valid ones."""
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
