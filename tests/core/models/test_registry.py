"""The model registry and the contract's base classes: what every network derives from, what the
registry derives from that, and the helpers training and inference share."""

import pytest
import torch
from torch import nn

from napari_cellseq.core.config import ModelConfig
from napari_cellseq.core.errors import CellseqError
from napari_cellseq.core.models import (FrameModel, TemporalModel, advance_state, available_models,
                                        build_model, default_model_config, detach_state, model_info,
                                        register_model)
from napari_cellseq.core.models.base import nearest_multiples

NETWORKS = {"deeplabv3plus", "fcn_googlenet", "gruunet", "segnet", "tiramisu", "ulstm", "unet"}


def test_registry_lists_every_network_with_its_kind_from_its_base_class():
    assert set(available_models()) == NETWORKS
    for name in available_models():
        info = model_info(name)
        base = TemporalModel if name == "ulstm" else FrameModel
        assert issubclass(info.builder, base)
        assert info.temporal is (base is TemporalModel) is info.builder.temporal
        assert info.input_kind == ("time-lapse" if info.temporal else "frames")


def test_unknown_model_names_the_valid_ones():
    with pytest.raises(CellseqError, match="unknown model 'vnet': choose one of deeplabv3plus, .*unet"):
        build_model(ModelConfig(name="vnet"))


def test_default_model_config_applies_registered_defaults_then_overrides():
    config = default_model_config("ulstm", depth=3)
    assert config.base_channels == 16 and config.depth == 3 and config.option("lstm_channels_ratio") == 0.5
    assert default_model_config("segnet").depth == 5


def test_register_model_refuses_a_class_outside_the_contract():
    class Plain(nn.Module):
        pass

    with pytest.raises(TypeError, match="must derive from FrameModel or TemporalModel"):
        register_model("plain", paper="none")(Plain)
    assert "plain" not in available_models()


def test_a_temporal_model_must_say_how_its_state_starts():
    class NoInitState(TemporalModel):
        def forward(self, x, state=None):
            return x, state

    with pytest.raises(TypeError, match="init_state"):
        NoInitState()


class _Recurrent(TemporalModel):
    """A running sum over time as state: ``state = state + sum_t x_t``; logits ``x + state``."""

    def init_state(self, batch_size, height, width, device=None, dtype=None):
        return torch.zeros(batch_size, 1, height, width, device=device, dtype=dtype)

    def forward(self, x, state=None):
        state = self.init_state(x.shape[0], *x.shape[-2:]) if state is None else state
        outputs = []
        for t in range(x.shape[1]):
            state = state + x[:, t]
            outputs.append(x[:, t] + state)
        return torch.stack(outputs, dim=1), state


def test_default_advance_is_the_state_of_forward():
    model = _Recurrent()
    x = torch.randn(2, 3, 1, 4, 4)
    torch.testing.assert_close(model.advance(x), x.sum(dim=1))
    torch.testing.assert_close(model.advance(x[:, 1:], model.advance(x[:, :1])), model(x)[1])
    torch.testing.assert_close(advance_state(model, x, None), model(x)[1])


def test_advance_state_falls_back_to_forward_for_wrappers():
    class Wrapper(nn.Module):  # follows the temporal calling convention without the base class
        temporal = True

        def __init__(self):
            super().__init__()
            self.net, self.calls = _Recurrent(), 0

        def forward(self, x, state=None):
            self.calls += 1
            return self.net(x, state)

    wrapper = Wrapper()
    x = torch.randn(1, 2, 1, 4, 4)
    torch.testing.assert_close(advance_state(wrapper, x, None), x.sum(dim=1))
    assert wrapper.calls == 1


def test_detach_state_keeps_the_structure():
    a = torch.ones(2, requires_grad=True) * 2
    state = ((a, a + 1), [a * 3])
    detached = detach_state(state)
    assert isinstance(detached, tuple) and isinstance(detached[0], tuple) and isinstance(detached[1], list)
    assert not any(t.requires_grad for t in (*detached[0], *detached[1]))
    assert torch.equal(detached[0][1], a + 1)
    assert detach_state(None) is None and TemporalModel.detach_state(None) is None
    with pytest.raises(TypeError, match="cannot detach"):
        detach_state({"h": a})


@pytest.mark.parametrize("n, stride, text", [(25, 8, "24 or 32"), (36, 8, "32 or 40"), (4, 8, "8"), (24, 8, "24"),
                                             (0, 16, "16")])
def test_nearest_multiples(n, stride, text):
    assert nearest_multiples(n, stride) == text
