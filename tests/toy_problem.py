"""A tiny, easy classification problem and its trainer, shared by the robustness and attack tests."""

import torch
from torch import nn


def two_colours(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """An easy problem: textured reddish (class 0) vs bluish (class 1) 8x8 images in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.3 + 0.2 * torch.rand(n, 3, 8, 8, generator=g)
    x[y == 0, 0] += 0.4
    x[y == 1, 2] += 0.4
    return x.clamp(0, 1), y


def train(model: nn.Module, steps: int = 30) -> nn.Module:
    """A few SGD steps on 128 images of :func:`two_colours`; returns the model in eval mode."""
    x, y = two_colours(128, seed=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()
