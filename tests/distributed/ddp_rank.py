"""One rank of a DDP training run for test_ddp.py, started by torchrun: joins the gloo group from
the environment, trains a tiny U-Net on a synthetic movie for a time budget and writes what this
rank saw (steps, losses, stop reason, model path) to ``OUT/rank<R>.json``.

    torchrun --standalone --nproc_per_node=2 tests/distributed/ddp_rank.py OUT SECONDS
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from napari_cellseq.core.config import DataConfig, TrainConfig
from napari_cellseq.core.distributed.ddp import process_group, rank
from napari_cellseq.core.events import Done, Step
from napari_cellseq.core.models import default_model_config
from napari_cellseq.core.synthetic import synthetic_timelapse
from napari_cellseq.core.training import train


def main() -> None:
    out, seconds = Path(sys.argv[1]), float(sys.argv[2])
    torch.set_num_threads(1)
    image, labels = synthetic_timelapse(n_frames=4, shape=(64, 64), n_cells=5, seed=4, radius_range=(4.0, 8.0))
    with process_group("cpu"):
        events = list(train(np.asarray(image), np.asarray(labels), out / "model.pt",
                            model_config=default_model_config("unet", base_channels=4, depth=2),
                            data_config=DataConfig(crop_size=48, augment_elastic=False),
                            train_config=TrainConfig(iterations=None, max_time=seconds, batch_size=2, device="cpu",
                                                     checkpoint_every=1.0)))
        r = rank()
    done = [e for e in events if isinstance(e, Done)][-1]
    losses = [e.loss for e in events if isinstance(e, Step)]
    (out / f"rank{r}.json").write_text(json.dumps({"steps": done.iteration, "reason": done.reason, "path": done.path,
                                                   "losses": losses}))


if __name__ == "__main__":
    main()
