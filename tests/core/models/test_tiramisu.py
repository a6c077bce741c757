"""Tiramisu / FC-DenseNet (Jégou et al. 2017; paper 004): the frame model contract, FC-DenseNet103's
parameter count and layers, the ``blocks`` option."""

import pytest
import torch
from contract import FrameModelContract
from torch import nn

from napari_cellseq.core.config import ModelConfig
from napari_cellseq.core.models import build_model, default_model_config, parameter_count


class TestTiramisu(FrameModelContract):
    name = "tiramisu"

    def test_reference_configuration_matches_the_paper_parameter_count(self):
        paper_count = 9_419_011  # paper 004, Table 1 (FC-DenseNet103)
        for overrides in ({}, {"base_channels": 4, "depth": 2}):  # the reference option wins
            count = parameter_count(default_model_config("tiramisu", options=(("reference", True),), **overrides))
            assert abs(count - paper_count) / paper_count < 0.10, count
        assert parameter_count(default_model_config("tiramisu")) < paper_count / 4  # the default is lighter

    def test_fc_densenet103_has_103_layers(self):
        model = build_model(ModelConfig(name="tiramisu", options=(("reference", True),)))
        convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        assert len(convs) == 103 and model.stride == 32
        assert model.first.out_channels == 48
        assert model.bottleneck.out_channels == 15 * 16  # only the new maps go up

    def test_blocks_option_and_validation(self):
        model = self.build(options=(("blocks", (2, 3, 2)),))
        assert model.stride == 2
        with torch.no_grad():
            assert model.eval()(torch.randn(1, 1, 6, 10)).shape == (1, 3, 6, 10)
        for blocks in ((2, 3), (0, 1, 1)):
            with pytest.raises(ValueError):
                self.build(options=(("blocks", blocks),))
