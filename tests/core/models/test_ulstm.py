"""U-LSTM (paper 000) and its C-LSTM cell: the temporal model contract, then widths, size and
state checks, the recurrent weights' gradients, chunked sequences and the cell's equations."""

import io

import pytest
import torch
from contract import TemporalModelContract

from napari_cellseq.core.config import ModelConfig
from napari_cellseq.core.models import build_model, detach_state, model_info
from napari_cellseq.core.models import ulstm as ulstm_module
from napari_cellseq.core.models.convlstm import ConvLSTMCell
from napari_cellseq.core.models.ulstm import ULSTM


class TestULSTM(TemporalModelContract):
    name = "ulstm"
    any_size = False  # the recurrent state has one size per level


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: a second OpenMP thread only adds synchronisation, which on a busy
    2-core machine made the sequence tests ~100x slower (seconds instead of tens of ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(base: int = 4, depth: int = 4, **kw) -> ULSTM:
    """The paper's layers (batch norm, full-width C-LSTMs), narrow."""
    torch.manual_seed(0)
    return build_model(ModelConfig(name="ulstm", base_channels=base, depth=depth, **kw))


def test_registered_as_temporal_model():
    info = model_info("ulstm")
    assert info.input_kind == "time-lapse" and info.builder is ULSTM
    model = small()
    assert model.temporal is True and model.stride == 8
    assert small(depth=2).stride == 2


def test_shapes_batch_two_three_frames_odd_valid_size():
    model = small().eval()
    x = torch.randn(2, 3, 1, 24, 40)  # 3x5 multiples of the stride 8
    with torch.no_grad():
        logits, state = model(x)
    assert logits.shape == (2, 3, 3, 24, 40)
    assert len(state) == 4
    for level, (h, c) in enumerate(state):
        assert h.shape == c.shape == (2, 4 * 2**level, 24 >> level, 40 >> level)


def test_widths_and_lstm_channels_ratio_option():
    model = small(base=8, options=(("lstm_channels_ratio", 0.5),))
    assert model.widths == [8, 16, 32, 64]
    assert model.lstm_widths == [4, 8, 16, 32]
    with torch.no_grad():
        logits, state = model.eval()(torch.randn(1, 2, 1, 16, 16))
    assert logits.shape == (1, 2, 3, 16, 16)
    assert [h.shape[1] for h, _ in state] == [4, 8, 16, 32]
    with pytest.raises(ValueError):
        small(options=(("lstm_channels_ratio", 0.0),))


@pytest.mark.parametrize("size", [(25, 40), (24, 36), (4, 40)])
def test_wrong_sizes_raise_with_nearest_valid_sizes(size):
    model = small().eval()
    with pytest.raises(ValueError, match="'ulstm' needs frame height and width that are multiples of 8") as err:
        model(torch.randn(1, 1, 1, *size))
    if size == (25, 40):
        assert "24 or 32" in str(err.value)
    if size == (24, 36):
        assert "32 or 40" in str(err.value)


def test_wrong_rank_channels_or_state_raise():
    model = small().eval()
    with pytest.raises(ValueError):
        model(torch.randn(1, 1, 24, 40))  # missing the time axis
    with pytest.raises(ValueError):
        model(torch.randn(1, 1, 2, 24, 40))  # 2 channels, model has 1
    state = model.init_state(1, 16, 16)
    with pytest.raises(ValueError, match="state of level 0"):
        model(torch.randn(1, 1, 1, 24, 40), state)  # state for another frame size
    with pytest.raises(ValueError):
        model(torch.randn(1, 1, 1, 16, 16), state[:2])


def test_backward_reaches_every_parameter():
    model = small().train()
    logits, _ = model(torch.randn(2, 3, 1, 16, 24))
    logits.pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # the recurrent (h) half of each C-LSTM weight is trained too
    for cell in model.lstms:
        assert cell.conv.weight.grad[:, cell.in_channels :].abs().sum() > 0


def test_truncated_bptt_with_detached_state():
    model = small().train()
    x = torch.randn(1, 4, 1, 16, 16)
    _, state = model(x[:, :2])
    assert ulstm_module.detach_state is detach_state  # the name training imported from here
    state = detach_state(state)
    assert isinstance(state, tuple) and all(isinstance(level, tuple) for level in state)
    assert all(not h.requires_grad and not c.requires_grad for h, c in state)
    assert ULSTM.detach_state(None) is None
    logits, _ = model(x[:, 2:], state)
    logits.mean().backward()  # does not reach into the first chunk's graph


def test_sequence_equals_frame_by_frame_and_chunks():
    model = small().eval()
    torch.manual_seed(1)
    x = torch.randn(2, 6, 1, 16, 24)
    with torch.no_grad():
        whole, whole_state = model(x)
        state, frames = None, []
        for t in range(6):
            out, state = model(x[:, t : t + 1], state)
            frames.append(out)
        first, s2 = model(x[:, :2])
        rest, s6 = model(x[:, 2:], s2)
    torch.testing.assert_close(torch.cat(frames, dim=1), whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole, atol=1e-5, rtol=0)
    for (h1, c1), (h2, c2), (h3, c3) in zip(whole_state, state, s6):
        torch.testing.assert_close(h2, h1, atol=1e-5, rtol=0)
        torch.testing.assert_close(c3, c1, atol=1e-5, rtol=0)


def test_state_dict_round_trip_gives_identical_outputs():
    model = small().train()
    model(torch.randn(2, 2, 1, 16, 16))  # move the batch-norm running statistics
    model.eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(123)  # a different initialisation, overwritten by the load
    clone = build_model(model.config).eval()
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.randn(1, 3, 1, 16, 16)
    with torch.no_grad():
        a, sa = model(x)
        b, sb = clone(x)
    assert torch.equal(a, b)
    assert all(torch.equal(h1, h2) for (h1, _), (h2, _) in zip(sa, sb))


def test_hidden_state_carries_the_past():
    ulstm = small().eval()
    unet = build_model(ModelConfig(name="unet", base_channels=4)).eval()
    x = torch.randn(1, 4, 1, 16, 16)
    y = x.clone()
    y[:, 0] = torch.randn(1, 1, 16, 16)  # only frame 0 differs
    with torch.no_grad():
        ax, _ = ulstm(x)
        ay, _ = ulstm(y)
        ux, uy = unet(x[0]), unet(y[0])  # frames as a batch
    assert (ax[:, 3] - ay[:, 3]).abs().max() > 1e-4
    assert torch.equal(ux[3], uy[3])


def test_convlstm_cell_follows_the_equations():
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3)
    hc = 3
    assert torch.all(cell.conv.bias[hc : 2 * hc] == 1.0)  # forget-gate bias
    x = torch.randn(1, 1, 2, 5, 6)
    h0, c0 = torch.randn(1, 3, 5, 6), torch.randn(1, 3, 5, 6)
    with torch.no_grad():
        h_seq, (h1, c1) = cell(x, (h0, c0))
        gates = cell.conv(torch.cat([x[:, 0], h0], dim=1))
        i, f, o, g = gates.split(hc, dim=1)
        c_ref = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
        h_ref = torch.sigmoid(o) * torch.tanh(c_ref)
    torch.testing.assert_close(c1, c_ref)
    torch.testing.assert_close(h1, h_ref)
    assert torch.equal(h_seq[:, 0], h1)


def test_advance_runs_the_encoder_only_and_checks_its_input():
    """The contract checks advance equals forward's state; the U-LSTM's skips the decoder."""
    model = small().eval()
    called = []
    for module in (model.bottleneck, model.head, model.convs[-1]):
        module.register_forward_hook(lambda mod, args, out: called.append(mod))
    with torch.no_grad():
        state = model.advance(torch.randn(2, 3, 1, 16, 24))
    assert not called and len(state) == 4
    with pytest.raises(ValueError, match="expects"):
        model.advance(torch.randn(2, 1, 16, 24))
