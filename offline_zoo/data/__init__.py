"""Datasets: the episode representation, loaders by task name, batch samplers."""

from .dataset import Dataset, DatasetError, Episode, check_ratio, default_subset_seed, split_episodes
from .loaders import SOURCES, DataUnavailableError, check_data_available, data_home, dataset_from_minari, load_dataset
from .samplers import TransitionSampler, WindowSampler, returns_to_go

__all__ = [
    "Dataset",
    "DatasetError",
    "Episode",
    "check_ratio",
    "default_subset_seed",
    "split_episodes",
    "SOURCES",
    "DataUnavailableError",
    "data_home",
    "dataset_from_minari",
    "load_dataset",
    "check_data_available",
    "TransitionSampler",
    "WindowSampler",
    "returns_to_go",
]
