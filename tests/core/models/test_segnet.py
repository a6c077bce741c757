"""SegNet (Badrinarayanan et al. 2015; CS230 report, paper 002): the frame model contract,
un-pooling with the encoder's indices, the paper's width."""

import pytest
import torch
from contract import FrameModelContract

from napari_cellseq.core.config import ModelConfig
from napari_cellseq.core.models import build_model, default_model_config, parameter_count
from napari_cellseq.core.models.segnet import SegNet


class TestSegNet(FrameModelContract):
    name = "segnet"
    learn = {"depth": 3}

    def test_decoder_unpools_to_the_encoder_argmax_positions(self):
        model = self.build(depth=3).eval()
        assert isinstance(model, SegNet) and model.stride == 8
        x = torch.randn(1, 1, 32, 40)
        seen = {}
        model.decoders[0].register_forward_pre_hook(lambda mod, args: seen.setdefault("unpooled", args[0]))
        with torch.no_grad():
            feats, indices, sizes = model.encode(x)
            model.decode(feats, indices, sizes)
        unpooled = seen["unpooled"].flatten(2)  # (1, C, h*w) at the deepest pre-pool size
        idx = indices[-1].flatten(2)
        # every pooled value sits exactly at the position its maximum came from, zeros elsewhere
        torch.testing.assert_close(unpooled.gather(2, idx), feats.flatten(2))
        mask = torch.zeros_like(unpooled, dtype=torch.bool).scatter_(2, idx, True)
        assert (unpooled[~mask] == 0).all()
        assert mask.float().mean().item() == pytest.approx(0.25)

    def test_output_depends_on_where_the_maxima_were(self):
        # train mode: batch statistics normalise the activations, which at initialisation are tiny
        # with eval-mode (unit) running statistics
        model = self.build(depth=2).train()
        x = torch.randn(2, 1, 16, 16)
        with torch.no_grad():
            feats, indices, sizes = model.encode(x)
            out = model.decode(feats, indices, sizes)
            # same pooled values, each maximum moved to the other column of its 2x2 window
            moved = [idx ^ 1 for idx in indices]
            out_moved = model.decode(feats, moved, sizes)
            assert torch.equal(model.decode(feats, [i.clone() for i in indices], sizes), out)
        assert (out - out_moved).abs().max() > 0.1 * out.std()

    def test_paper_width(self):
        # 13 VGG16 conv layers + mirrored decoder: 29.5 M parameters
        assert abs(parameter_count(ModelConfig(name="segnet", base_channels=64, depth=5)) - 29.5e6) < 0.05 * 29.5e6

    def test_bad_depth_raises(self):
        with pytest.raises(ValueError, match="depth"):
            build_model(default_model_config("segnet", depth=6))
