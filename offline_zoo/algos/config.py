"""Algorithm configs: a dataclass per algorithm, filled from per-task YAML defaults and keywords.

Resolution order (later wins): dataclass defaults -> ``configs/<algo>.yaml`` ``default`` ->
the task's family (``mujoco``, ``atari``...) -> its domain (``hopper``) -> the exact task name
(``hopper-medium``) -> a user YAML file (``config_file=``, same layout or a flat mapping) -> keyword
overrides.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import yaml

from ..tasks import Task

__all__ = ["AlgoConfig", "ConfigError", "resolve_config", "task_defaults", "validate_config"]


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

    # What a config recorded before a field existed did: a saved model or a benchmark run's record
    # without the field gets this value, not the current default, which may differ (e.g. the
    # sequence agents' timestep table, N(0, 1) before `timestep_init` came with N(0, 0.02)).
    values_before_field: ClassVar[dict[str, Any]] = {}

    def __post_init__(self) -> None:
        validate_config(self)

    @classmethod
    def complete_record(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` (a recorded config) with the fields it predates filled from `values_before_field`.

        Examples:
            >>> from offline_zoo.algos.dt import DTConfig
            >>> DTConfig.complete_record({"n_layer": 3})["timestep_init"]  # recorded before the field
            'released'
            >>> DTConfig.complete_record({"timestep_init": "gpt2"})["timestep_init"]
            'gpt2'
        """
        return {**{k: v for k, v in cls.values_before_field.items() if k not in values}, **values}

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return dataclasses.asdict(self)


# Ranges of fields by name, shared by every algorithm's config: (low, low included, high, high included).
_AT_LEAST_ONE = (1, True, math.inf, False)
_NON_NEGATIVE = (0, True, math.inf, False)
_POSITIVE = (0, False, math.inf, False)
_PROBABILITY = (0, True, 1, False)  # dropout rates
_DISCOUNT = (0, False, 1, True)
_RANGES: dict[str, tuple[float, bool, float, bool]] = {
    **dict.fromkeys((
        "n_steps", "batch_size", "eval_episodes", "context_len", "hidden_size", "n_layer", "n_head", "n_embd",
        "lora_rank", "n_clusters", "lm_batch_size", "lm_block_size", "n_action_samples", "n_quantiles", "n_critics",
        "cnn_feature_size", "target_update_interval", "update_actor_interval",
    ), _AT_LEAST_ONE),
    **dict.fromkeys(("warmup_steps", "rl_start_step"), _NON_NEGATIVE),
    **dict.fromkeys((
        "adam_eps", "grad_clip", "lora_alpha", "warmup_tokens", "final_tokens", "alignment_horizon", "reward_multiplier", "weight_temp", "max_weight",
        "initial_alpha", "initial_temperature",
    ), _POSITIVE),
    **dict.fromkeys((
        "weight_decay", "language_loss_coef", "lm_loss_coef", "alignment_coef", "conservative_weight", "alpha",
        "alpha_threshold", "beta", "lam", "action_flexibility", "target_smoothing_clip", "target_smoothing_sigma",
        # 0 keeps CQL's alpha / SAC's temperature fixed at its initial value
        "alpha_learning_rate", "temp_learning_rate",
    ), _NON_NEGATIVE),
    **dict.fromkeys(("dropout", "attn_dropout", "resid_dropout", "lora_dropout"), _PROBABILITY),
    **dict.fromkeys(("gamma", "tau"), _DISCOUNT),
    "expectile": (0, False, 1, False),
}
_ELEMENT_RANGES = {"hidden_units": _AT_LEAST_ONE, "imitator_hidden_units": _AT_LEAST_ONE}


def _range_of(name: str) -> tuple[float, bool, float, bool] | None:
    if name in _RANGES:
        return _RANGES[name]
    if name == "learning_rate" or name.endswith("_learning_rate"):
        return _POSITIVE
    return None


def _describe_range(r: tuple[float, bool, float, bool]) -> str:
    lo, lo_in, hi, hi_in = r
    if hi == math.inf:
        return f"{'>=' if lo_in else '>'} {lo:g}"
    return f"in {'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"


def _in_range(x: float, r: tuple[float, bool, float, bool]) -> bool:
    lo, lo_in, hi, hi_in = r
    return (x >= lo if lo_in else x > lo) and (x <= hi if hi_in else x < hi)


def _type_hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


_HINTS: dict[type, dict[str, Any]] = {}


def _alternatives(hint: Any) -> tuple[list[Any], bool]:
    """The non-None members of a (possibly optional) annotation, and whether None is allowed."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        return [a for a in args if a is not type(None)], type(None) in args
    return [hint], hint is type(None) or hint is Any


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    """(fits, value): ``value`` checked against one annotation; lossless conversions only
    (an integral float such as ``1e5`` for an int field, an int for a float, a list for a tuple)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True, value
    if hint is bool:
        return (True, bool(value)) if isinstance(value, (bool, np.bool_)) else (False, value)
    if isinstance(value, (bool, np.bool_)):
        return False, value  # True is an int to Python, never a number of steps or a rate
    if hint is int:
        if isinstance(value, (int, np.integer)):
            return True, int(value)
        if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
            return True, int(value)
        return False, value
    if hint is float:
        if isinstance(value, (int, float, np.integer, np.floating)):
            return True, float(value)
        return False, value
    if hint is str:
        return isinstance(value, str), value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        args = typing.get_args(hint)
        element = args[0] if args else Any
        out = []
        for v in value:
            ok, v = _coerce(v, element)
            if not ok:
                return False, value
            out.append(v)
        return True, tuple(out)
    return True, value  # an annotation this check does not know: left to the algorithm


def _type_name(hint: Any) -> str:
    members, optional = _alternatives(hint)
    names = []
    for h in members:
        if typing.get_origin(h) is tuple:
            element = typing.get_args(h)[0] if typing.get_args(h) else Any
            names.append(f"a list of {getattr(element, '__name__', str(element))}s")
        else:
            names.append({int: "an integer", float: "a number", str: "a string", bool: "True or False"}.get(h, str(h)))
    return " or ".join(names + (["None"] if optional else []))


def validate_config(config: Any) -> None:
    """Check every field of an algorithm config against its annotation and its allowed range.

    Called when a config is built; the first bad field raises :class:`ConfigError` naming the value
    and what is allowed. Lossless conversions are applied in place (``n_steps=1e5`` -> ``100000``,
    ``hidden_units=[64, 64]`` -> ``(64, 64)``); nothing else is coerced.

    Examples:
        >>> AlgoConfig(batch_size=0)
        Traceback (most recent call last):
        ...
        offline_zoo.algos.config.ConfigError: AlgoConfig.batch_size=0 is out of range: it must be an integer >= 1
        >>> AlgoConfig(n_steps="1000")
        Traceback (most recent call last):
        ...
        offline_zoo.algos.config.ConfigError: AlgoConfig.n_steps='1000' has the wrong type (str): it must be an integer
        >>> AlgoConfig(n_steps=1e4).n_steps
        10000
    """
    cls = type(config)
    hints = _type_hints(cls)
    for f in fields(config):
        value, hint = getattr(config, f.name), hints.get(f.name, Any)
        members, optional = _alternatives(hint)
        if value is None:
            if optional:
                continue
            raise ConfigError(f"{cls.__name__}.{f.name}=None is not allowed: it must be {_type_name(hint)}")
        for member in members:
            ok, converted = _coerce(value, member)
            if ok:
                break
        else:
            raise ConfigError(
                f"{cls.__name__}.{f.name}={value!r} has the wrong type ({type(value).__name__}): it must be {_type_name(hint)}"
            )
        numbers = converted if isinstance(converted, tuple) else (converted,)
        for x in numbers:
            if isinstance(x, float) and not math.isfinite(x):
                raise ConfigError(f"{cls.__name__}.{f.name}={value!r} is not finite")
        r = _range_of(f.name)
        if r is not None and isinstance(converted, (int, float)) and not isinstance(converted, bool) and not _in_range(converted, r):
            raise ConfigError(f"{cls.__name__}.{f.name}={value!r} is out of range: it must be {_type_name(hint).split(' or ')[0]} {_describe_range(r)}")
        r = _ELEMENT_RANGES.get(f.name)
        if r is not None and isinstance(converted, tuple):
            if not converted or any(not _in_range(x, r) for x in converted):
                raise ConfigError(f"{cls.__name__}.{f.name}={value!r} must be a non-empty list of integers {_describe_range(r)}, e.g. [256, 256]")
        if converted is not value:
            object.__setattr__(config, f.name, converted)


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
