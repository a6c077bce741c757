"""DeepLabv3+ with Xception (Chen et al. 2018; paper 004): the frame model contract, the paper's
parameter count, atrous separable convolutions and strides."""

import torch
from contract import FrameModelContract
from torch import nn

from napari_cellseq.core.models import default_model_config, parameter_count


class TestDeepLabV3Plus(FrameModelContract):
    name = "deeplabv3plus"

    def test_reference_configuration_matches_the_paper_parameter_count(self):
        paper_count = 41_253_023  # paper 004, Table 1
        for overrides in ({}, {"base_channels": 4, "depth": 2}):  # the reference option wins
            count = parameter_count(default_model_config("deeplabv3plus", options=(("reference", True),), **overrides))
            assert abs(count - paper_count) / paper_count < 0.10, count
        assert parameter_count(default_model_config("deeplabv3plus")) < paper_count / 4  # the default is lighter

    def test_atrous_separable_aspp_and_strides(self):
        model = self.build().eval()
        assert model.stride == 16
        dilations = {m.dilation[0] for m in model.aspp.modules() if isinstance(m, nn.Conv2d) and m.groups > 1}
        assert dilations == {6, 12, 18}  # atrous *separable* (depthwise) convolutions in ASPP
        exit_rates = {m.dilation[0] for m in model.exit.modules() if isinstance(m, nn.Conv2d) and m.groups > 1}
        assert 2 in exit_rates  # atrous instead of a 5th stride
        x = torch.randn(1, 1, 64, 96)
        with torch.no_grad():
            x8, low = model.entry_low(model.entry(x))
            high = model.exit(model.middle(model.entry_high(x8)))
        assert low.shape[-2:] == (16, 24) and high.shape[-2:] == (4, 6)  # strides 4 and 16

    def test_trains_with_batch_of_one(self):
        model = self.build().train()
        model(torch.randn(1, 1, 32, 32)).sum().backward()  # image pooling has no batch norm
