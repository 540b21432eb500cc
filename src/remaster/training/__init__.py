"""Fine-tuning (transfer learning) of Real-ESRGAN-family networks on the user's own images.

>>> from remaster.training import FinetuneOptions, finetune
>>> result = finetune(FinetuneOptions(model="realesr-animevideov3", data="photos/", output="runs/photos",
...                                   losses="l1=1,perceptual=0,gan=0", steps=500))
>>> result.run_dir / "best.safetensors"      # usable as Remasterer(["runs/photos/best.safetensors"])

See ``docs/finetuning.md``. Imported only by ``remaster finetune``: nothing here loads at start-up.
"""

from __future__ import annotations

from remaster.training.data import SkippedFile
from remaster.training.finetune import CHECKPOINT_KEYS, FinetuneOptions, FinetuneResult, finetune

__all__ = ["FinetuneOptions", "FinetuneResult", "finetune", "CHECKPOINT_KEYS", "SkippedFile"]
