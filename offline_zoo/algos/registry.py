"""Name -> algorithm class registry, so the benchmark and users can add algorithms without touching core code.

    >>> from offline_zoo import get_algo, list_algos
    >>> get_algo("td3+bc").__name__  # doctest: +SKIP
    'TD3PlusBC'
"""

from __future__ import annotations

import difflib
import re

__all__ = ["register_algo", "get_algo", "list_algos", "canonical_name"]

_ALGOS: dict[str, type] = {}
_ALIASES: dict[str, str] = {}


def canonical_name(name: str) -> str:
    """Lower-case, '+' -> 'plus', punctuation dropped: 'TD3+BC', 'td3_plus_bc', 'TD3PlusBC' -> 'td3plusbc'."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower().replace("+", "plus"))


def register_algo(cls=None, *, name: str | None = None, aliases: tuple[str, ...] = ()):
    """Class decorator (or function) adding an algorithm under ``name`` (default ``cls.name``) and aliases."""

    def add(c):
        key = name or getattr(c, "name", None) or c.__name__
        _ALGOS[key] = c
        for alias in (key, c.__name__, *aliases):
            _ALIASES[canonical_name(alias)] = key
        return c

    return add(cls) if cls is not None else add


def get_algo(name: str) -> type:
    """The algorithm class registered under ``name`` (any spelling: 'td3+bc', 'TD3PlusBC', 'wiki-rl')."""
    _load_builtins()
    key = _ALIASES.get(canonical_name(name))
    if key is None:
        close = difflib.get_close_matches(str(name).lower(), list(_ALGOS), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown algorithm {name!r}.{hint} Registered: {', '.join(list_algos())}")
    return _ALGOS[key]


def list_algos() -> list[str]:
    """Names of every registered algorithm."""
    _load_builtins()
    return list(_ALGOS)


def _load_builtins() -> None:
    import offline_zoo.algos  # noqa: F401  (registers the built-in algorithms on import)
