"""The torch device of a run, from a name (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``).

One rule for the algorithms and the language-model pre-training alike.
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "check_device_name"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; anything else is checked and returned.

    Raises ValueError for a name torch does not know, or for CUDA when torch sees no GPU.

    Examples:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("auto").type in ("cpu", "cuda")
        True
        >>> resolve_device("gpu")
        Traceback (most recent call last):
        ...
        ValueError: device='gpu' is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for CUDA but torch sees no GPU; use 'cpu' or 'auto'")
    return dev


def check_device_name(device: str) -> str:
    """Check that ``device`` names a device kind offline-zoo runs on, without asking whether this
    machine has it (a Ray cluster's workers may have GPUs the driver lacks).

    Examples:
        >>> check_device_name("cuda:1")
        'cuda:1'
        >>> check_device_name("tpu")
        Traceback (most recent call last):
        ...
        ValueError: device='tpu' is not supported; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'
    """
    if str(device) == "auto":
        return "auto"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        kind = None
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    return str(device)
