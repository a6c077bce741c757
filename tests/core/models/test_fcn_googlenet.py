"""Fully convolutional GoogLeNet (Szegedy et al. 2015; blog post, paper 003): the frame model
contract, the inception widths of Table 1 and the single transposed-convolution head."""

import pytest
import torch
from contract import FrameModelContract
from torch import nn

from napari_cellseq.core.config import ModelConfig
from napari_cellseq.core.models import build_model, default_model_config


class TestFCNGoogLeNet(FrameModelContract):
    name = "fcn_googlenet"

    def test_inception_widths_and_single_transposed_conv_head(self):
        model = build_model(ModelConfig(name="fcn_googlenet", base_channels=64, num_classes=2))
        widths = [m.out_channels for m in model.inception if hasattr(m, "out_channels")]
        assert widths == [256, 480, 512, 512, 512, 528, 832, 832, 1024]  # Szegedy et al., Table 1
        assert isinstance(model.head, nn.ConvTranspose2d)
        assert model.head.stride == (32, 32) and model.head.in_channels == 1024 and model.head.out_channels == 2
        small = self.build().eval()
        with torch.no_grad():
            feats = small.inception(small.stem(torch.randn(1, 1, 64, 96)))
        assert feats.shape[-2:] == (2, 3)  # stride 32 before the transposed convolution

    def test_backbone_at_paper_width(self):
        # GoogLeNet backbone at width 64: Szegedy et al.'s ~6 M (without the fc classifier)
        fcn = build_model(ModelConfig(name="fcn_googlenet", base_channels=64))
        backbone = sum(p.numel() for n, p in fcn.named_parameters() if not n.startswith("head"))
        assert 5.5e6 < backbone < 6.5e6

    def test_bad_upsample_kernel_raises(self):
        with pytest.raises(ValueError, match="upsample_kernel"):
            build_model(default_model_config("fcn_googlenet", options=(("upsample_kernel", 31),)))
