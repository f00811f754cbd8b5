"""Name -> algorithm class registry, so the benchmark and users can add algorithms without touching core code.

Examples:
    >>> from offline_zoo import get_algo, list_algos
    >>> get_algo("td3+bc").__name__
    'TD3PlusBC'
"""

from __future__ import annotations

import difflib
import re

__all__ = ["register_algo", "get_algo", "list_algos", "canonical_name"]

_ALGOS: dict[str, type] = {}
_ALIASES: dict[str, str] = {}


def canonical_name(name: str) -> str:
    """The registry key of a spelling: lower-case, '+' -> 'plus', punctuation dropped.

    Examples:
        >>> [canonical_name(n) for n in ("TD3+BC", "td3_plus_bc", "TD3PlusBC")]
        ['td3plusbc', 'td3plusbc', 'td3plusbc']
        >>> canonical_name("Wiki-RL")
        'wikirl'
    """
    return re.sub(r"[^a-z0-9]", "", str(name).lower().replace("+", "plus"))


def register_algo(cls=None, *, name: str | None = None, aliases: tuple[str, ...] = (), overwrite: bool = False):
    """Class decorator (or function) adding an algorithm under ``name`` (default ``cls.name``) and aliases.

    The class name and every alias are looked up in any spelling (see `canonical_name`). Keep
    ``name`` equal to the class's ``name`` attribute: saved files record ``cls.name``, and
    ``OfflineAlgo.load`` finds the class by it. A name or alias that already finds another class
    raises ``ValueError`` (``"%BC"`` spells ``"bc"``, the built-in BC's name), unless ``overwrite``;
    registering a class again, or a new definition of it (a notebook cell run twice), is fine.

    Args:
        cls (type | None): the class, when used as a plain decorator or function.
        name: registry name (default: ``cls.name``, else the class name).
        aliases: further names that find the class.
        overwrite: let the names point to this class even where they found another one.

    Returns the class itself (or, without ``cls``, a decorator that does).

    Examples:
        >>> from offline_zoo import DT
        >>> @register_algo(aliases=("my-decision-transformer",))
        ... class MyDT(DT):
        ...     name = "my-dt"
        >>> get_algo("My_Decision_Transformer") is MyDT, get_algo("mydt") is MyDT
        (True, True)
        >>> "my-dt" in list_algos()
        True
        >>> @register_algo(aliases=("%BC",))
        ... class FilteredBC(DT):
        ...     name = "filtered-bc"
        Traceback (most recent call last):
        ...
        ValueError: cannot register FilteredBC as '%BC': that name already finds offline_zoo.algos.d3rlpy_baselines.BC (names match in any spelling: '%BC' -> 'bc'); choose another name or alias, or pass overwrite=True
    """

    def add(c):
        key = name or getattr(c, "name", None) or c.__name__
        spellings = {canonical_name(alias): alias for alias in (key, c.__name__, *aliases)}
        if not overwrite:
            for spelling, alias in spellings.items():
                taken = _ALGOS.get(_ALIASES.get(spelling, ""))
                if taken is not None and not _same_class(taken, c):
                    raise ValueError(
                        f"cannot register {c.__name__} as {alias!r}: that name already finds {taken.__module__}.{taken.__qualname__} "
                        f"(names match in any spelling: {alias!r} -> {spelling!r}); choose another name or alias, or pass overwrite=True"
                    )
        _ALGOS[key] = c
        for spelling in spellings:
            _ALIASES[spelling] = key
        return c

    return add(cls) if cls is not None else add


def _same_class(a: type, b: type) -> bool:
    """The same class, or a new definition of it (same module and qualified name)."""
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def get_algo(name: str) -> type:
    """The algorithm class registered under ``name`` (any spelling: 'td3+bc', 'TD3PlusBC', 'wiki-rl').

    Raises KeyError, suggesting the closest names, for an unknown algorithm.

    Examples:
        >>> get_algo("TD3PlusBC") is get_algo("td3+bc"), get_algo("wiki-rl").__name__
        (True, 'WikiRL')
        >>> get_algo("lamoo")
        Traceback (most recent call last):
        ...
        KeyError: "unknown algorithm 'lamoo'. Did you mean 'lamo'? Registered: dt, lamo, ...
    """
    _load_builtins()
    key = _ALIASES.get(canonical_name(name))
    if key is None:
        close = difflib.get_close_matches(str(name).lower(), list(_ALGOS), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown algorithm {name!r}.{hint} Registered: {', '.join(list_algos())}")
    return _ALGOS[key]


def list_algos() -> list[str]:
    """Names of every registered algorithm: the built-in ones, then those added by `register_algo`.

    Examples:
        >>> list_algos()[:9]
        ['dt', 'lamo', 'wikirl', 'cql', 'iql', 'td3+bc', 'bcq', 'nfq', 'bc']
    """
    _load_builtins()
    return list(_ALGOS)


#: modules whose classes register themselves with `register_algo` when imported; loaded by name
#: (like plugins) so that the registry, which they import, never imports them back
_BUILTIN_MODULES = ("offline_zoo.algos.dt", "offline_zoo.algos.lamo", "offline_zoo.algos.wikirl", "offline_zoo.algos.d3rlpy_baselines")


def _load_builtins() -> None:
    import importlib

    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
