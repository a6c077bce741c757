"""U-Net (Ronneberger et al. 2015; CS230 report, paper 002): the frame model contract, its stride."""

import pytest
from contract import FrameModelContract

from napari_cellseq.core.models import build_model, default_model_config


class TestUNet(FrameModelContract):
    name = "unet"

    def test_stride_follows_the_depth(self):
        for depth in (1, 2, 4):
            assert self.build(depth=depth).stride == 2 ** (depth - 1)
        with pytest.raises(ValueError, match="depth"):
            build_model(default_model_config("unet", depth=0))
