"""One fine-tuning step at fp32 and at bf16, forced (never the host's "auto" choice).

``--precision auto`` picks bf16 on AVX512-BF16/AMX CPUs and fp32 elsewhere, where
bf16 is emulated and slow; the tiny networks and 16 px patches of conftest.py keep
each case under a second here, and under two seconds with oneDNN disabled and
ATEN_CPU_CAPABILITY=default (a rough model of a CPU without bf16). Validation and
the checkpoint run too; the full ``finetune()`` (log, curves) is test_finetune.py's.

bf16 against fp32: the first step starts from the same weights and patches, so
the losses differ only by the forward pass's bf16 rounding (8 significant bits):
measured here 1e-3 relative at most (l1 0.06623 against 0.06629); the bar is 2%.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from remaster.training import FinetuneOptions
from remaster.training.finetune import _Run
from remaster.training.models import load_generator
from remaster.weights import load_state_dict

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def start(model: Path, data: Path, out: Path, **changes) -> _Run:
    base = FinetuneOptions(model=str(model), data=str(data), output=str(out), steps=1, batch=2, patch=16,
                           losses="l1=1,perceptual=0,gan=0", degradation="simple", val_every=1, val_size=32,
                           log_every=1, quiet=True, lr=1e-3, freeze="none")
    return _Run(dataclasses.replace(base, **changes))


CASES = [  # network fixture, losses: both architectures, and the discriminator's own step once
    pytest.param("compact_file", "l1=1,perceptual=0,gan=0", id="compact-l1"),
    pytest.param("compact_file", "l1=1,perceptual=0,gan=0.1", id="compact-l1+gan"),
    pytest.param("rrdb_file", "l1=1,perceptual=0,gan=0", id="rrdb-l1"),
]


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(("network", "losses"), CASES)
def test_one_training_step(network, losses, precision, photos, tmp_path, request):
    model = request.getfixturevalue(network)
    run = start(model, photos, tmp_path / "run", precision=precision, losses=losses)
    assert run.dtype is PRECISIONS[precision]
    before = {k: v.clone() for k, v in run.generator.model.state_dict().items()}
    logs = run.train_step()
    assert set(logs) >= {"l1", "loss"} and all(math.isfinite(v) for v in logs.values()), logs
    assert ("d_loss" in logs) == ("gan=0.1" in losses)
    after = run.generator.model.state_dict()
    assert all(v.dtype == torch.float32 for v in after.values())  # autocast computes in bf16, weights stay fp32
    assert any(not torch.equal(before[k], after[k]) for k in before)
    scores = run.validate()
    assert 5.0 < scores["val_psnr"] < 60.0 and 0.0 < scores["val_ssim"] <= 1.0
    saved = run.save_model("last.safetensors", scores)
    assert all(v.dtype == torch.float32 for v in load_state_dict(saved).values())
    assert load_generator(str(saved)).scale == 2
    if precision != "fp32":
        reference = start(model, photos, tmp_path / "fp32", precision="fp32", losses=losses).train_step()
        for name in logs:
            assert logs[name] == pytest.approx(reference[name], rel=0.02), name
        assert logs["l1"] != reference["l1"]  # the forward pass really ran in bf16
