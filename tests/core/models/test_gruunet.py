"""GRUU-Net (Wollmann et al. 2019, paper 001): the frame model contract, iterations with shared
weights, one GRU step per FRDU, the convolutional GRU's update gate."""

import pytest
import torch
from contract import FrameModelContract

from napari_cellseq.core.losses import normalized_focal_loss
from napari_cellseq.core.models import build_model, default_model_config
from napari_cellseq.core.models.gruunet import ConvGRUCell, GRUUNet


class TestGRUUNet(FrameModelContract):
    name = "gruunet"
    learn = {"depth": 2, "options": (("iterations", 1),)}
    loss = staticmethod(normalized_focal_loss)  # the paper's loss

    def test_iterations_refine_with_shared_weights(self):
        one = self.build(depth=3, options=(("iterations", 1),)).eval()
        three = self.build(depth=3, options=(("iterations", 3),)).eval()
        assert isinstance(three, GRUUNet) and three.stride == 4
        # iterations reuse the same weights: same parameters, interchangeable state dicts
        assert sum(p.numel() for p in one.parameters()) == sum(p.numel() for p in three.parameters())
        three.load_state_dict(one.state_dict())
        x = torch.randn(1, 1, 16, 24)
        with torch.no_grad():
            y1, y3 = one(x), three(x)
            assert (y1 - y3).abs().max() > 1e-4
            one.iterations = 3  # the number of passes can change after training
            torch.testing.assert_close(one(x), y3)

    def test_every_frdu_is_one_gru_step(self):
        model = self.build(depth=3, options=(("iterations", 2),)).eval()
        calls = []
        model.gru.register_forward_hook(lambda mod, args, out: calls.append(out.shape))
        with torch.no_grad():
            model(torch.randn(1, 1, 16, 16))
        assert len(calls) == 2 * (2 * 3 - 1)  # iterations * FRDUs (3 down + 2 up)
        assert all(shape == (1, 4, 16, 16) for shape in calls)  # always at full resolution

    def test_conv_gru_update_gate_closed_keeps_the_state(self):
        cell = ConvGRUCell(2, 3)
        x, h = torch.randn(1, 2, 5, 5), torch.rand(1, 3, 5, 5)
        with torch.no_grad():
            cell.gates.bias[3:] = -50.0  # update gate u ~ 0
            torch.testing.assert_close(cell(x, h), h)
            cell.gates.bias[3:] = 50.0  # u ~ 1: the state becomes the candidate, in (-1, 1)
            out = cell(x, h)
        assert not torch.allclose(out, h) and out.abs().max() < 1

    def test_bad_iterations_raise(self):
        with pytest.raises(ValueError, match="iterations"):
            build_model(default_model_config("gruunet", options=(("iterations", 0),)))
