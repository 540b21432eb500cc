"""Speed of the fine-tuning pieces (run with `make bench PYTEST_ARGS="-k training"`).

The degradation is meant not to be the bottleneck: compare its time per batch with a training step
(forward + backward + Adam) of realesr-animevideov3 on the same batch of four 128-pixel patches.
"""

from __future__ import annotations

import pytest
import torch
from skimage import data

from remaster.stages.highorder import RealESRGANDegradation


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 255
    return torch.stack([image[:, 128 * i:128 * i + 128, 128:256] for i in range(4)])


def test_training_realesrgan_degradation_4x128(benchmark, batch):
    degrade = RealESRGANDegradation(seed=0)
    out = benchmark(degrade, batch)
    assert out.shape == (4, 3, 32, 32)


def test_training_step_animevideov3_4x128(benchmark, batch):
    from remaster.training.models import apply_freeze, load_generator

    generator = load_generator("realesr-animevideov3")
    apply_freeze(generator, "auto")
    model = generator.model
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    lr = RealESRGANDegradation(seed=0)(batch)

    def step() -> float:
        loss = (model(lr) - batch).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    assert benchmark(step) > 0
