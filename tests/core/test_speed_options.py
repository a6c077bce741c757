"""Speed options of training give the same results as the plain path (inference's speed options
are tested in tests/core/inference/, mixed precision in tests/core/test_device.py)."""

import numpy as np

from napari_cellseq.core.checkpoint import load_checkpoint
from napari_cellseq.core.config import TrainConfig
from napari_cellseq.core.models import default_model_config
from napari_cellseq.core.training import fit


def test_channels_last_training_writes_contiguous_weights(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.random((2, 48, 48), dtype=np.float32)
    labels = np.zeros((2, 48, 48), dtype=np.int32)
    labels[0, 10:20, 10:20] = 1
    labels[0, 30:40, 25:35] = 2
    fit(image, labels, tmp_path / "m.pt", model_config=default_model_config("unet", base_channels=4),
        train_config=TrainConfig(iterations=2, max_time=None, device="cpu", channels_last=True))
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert all(v.is_contiguous() for v in ckpt.state_dict.values())
