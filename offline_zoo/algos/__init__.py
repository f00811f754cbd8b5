"""Algorithms: the OfflineAlgo base, the registry, and every built-in algorithm (registered on import)."""

from .base import OfflineAlgo, RolloutState, Spec
from .config import AlgoConfig, ConfigError
from .registry import canonical_name, get_algo, list_algos, register_algo

# built-in algorithms register themselves on import
from .dt import DT, DTConfig  # noqa: E402,F401
from .lamo import LaMo, LaMoConfig  # noqa: E402,F401
from .wikirl import WikiRL, WikiRLConfig  # noqa: E402,F401
from .d3rlpy_baselines import BC, BCQ, CQL, IQL, NFQ, TD3PlusBC  # noqa: E402,F401
