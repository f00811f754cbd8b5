"""Nature-DQN convolutional state encoder for stacked Atari frames.

Examples:
    >>> import torch
    >>> enc = NatureCNN(out_dim=64)
    >>> enc(torch.zeros(2, 4, 84, 84)).shape
    torch.Size([2, 64])
"""

from __future__ import annotations

import torch
from torch import nn

from offline_zoo.models.embeddings import ResidualMLP

__all__ = ["NatureCNN", "conv_output_size"]


def conv_output_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Spatial output size of a convolution along one axis.

    Examples:
        >>> conv_output_size(84, 8, 4)
        20
    """
    return (size - kernel + 2 * padding) // stride + 1


class NatureCNN(nn.Module):
    """Nature-DQN encoder: 32@8x8/4, 64@4x4/2, 64@3x3/1 (ReLU), flatten, ``Linear(-> out_dim)``.

    No activation after the final Linear (as in LaMo's Atari code). With ``residual=True`` a
    `ResidualMLP` block ``(out_dim -> out_dim)`` follows
    (LaMo's MLP-embedding variant). Inputs are float tensors (N, C, H, W) already scaled to [0, 1];
    the trajectory transformer divides uint8 frames by 255 before calling this module.

    Args:
        in_channels: stacked frames (4 for Atari).
        input_size: (H, W) of the frames; 84x84 gives the 3136-feature flatten of the paper.
        out_dim: embedding size.
        residual: append a residual MLP block.

    Examples:
        >>> import torch
        >>> NatureCNN(in_channels=4, out_dim=32, residual=True)(torch.rand(3, 4, 84, 84)).shape
        torch.Size([3, 32])
    """

    def __init__(
        self,
        in_channels: int = 4,
        input_size: tuple[int, int] = (84, 84),
        out_dim: int = 512,
        residual: bool = False,
    ) -> None:
        super().__init__()
        h, w = int(input_size[0]), int(input_size[1])
        layers: list[nn.Module] = []
        channels = in_channels
        for out_c, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
            layers += [nn.Conv2d(channels, out_c, kernel, stride), nn.ReLU()]
            channels = out_c
            h, w = conv_output_size(h, kernel, stride), conv_output_size(w, kernel, stride)
        if h <= 0 or w <= 0:
            raise ValueError(f"input_size {tuple(input_size)} is too small for the Nature CNN (need >= 36x36)")
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.flat_dim = channels * h * w
        self.fc = nn.Linear(self.flat_dim, out_dim)
        self.residual = ResidualMLP(out_dim, out_dim) if residual else None

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode frames (N, C, H, W) in [0, 1] to (N, out_dim)."""
        x = self.fc(self.conv(frames))
        if self.residual is not None:
            x = self.residual(x)
        return x
