"""Behaviour of the networks beyond the shared contract: reference sizes, SegNet's pooling
indices, GRUU-Net's iterations, FC-DenseNet103's layer count, DeepLabv3+'s atrous parts."""

import pytest
import torch
from torch import nn

from napari_cellseq.core.config import ModelConfig
from napari_cellseq.core.losses import normalized_focal_loss, weighted_cross_entropy
from napari_cellseq.core.models import build_model, default_model_config, model_info, parameter_count
from napari_cellseq.core.models.gruunet import ConvGRUCell, GRUUNet
from napari_cellseq.core.models.segnet import SegNet


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: a second OpenMP thread only adds synchronisation on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


NEW_MODELS = ("gruunet", "segnet", "fcn_googlenet", "tiramisu", "deeplabv3plus")


def tiny(name: str, **kw) -> nn.Module:
    torch.manual_seed(0)
    return build_model(default_model_config(name, base_channels=4, **kw))


# ---------------------------------------------------------------- parameter counts


@pytest.mark.parametrize(
    "name, paper_count",
    [
        ("tiramisu", 9_419_011),  # paper 004, Table 1 (FC-DenseNet103)
        ("deeplabv3plus", 41_253_023),  # paper 004, Table 1
    ],
)
def test_reference_configurations_match_paper_parameter_counts(name, paper_count):
    # the reference option wins over base_channels / depth
    for overrides in ({}, {"base_channels": 4, "depth": 2}):
        config = default_model_config(name, options=(("reference", True),), **overrides)
        count = parameter_count(config)
        assert abs(count - paper_count) / paper_count < 0.10, count
    assert parameter_count(default_model_config(name)) < paper_count / 4  # the default is lighter


def test_segnet_and_googlenet_at_paper_width():
    # SegNet (Badrinarayanan et al., 13 VGG16 conv layers + mirrored decoder): 29.5 M
    assert abs(parameter_count(ModelConfig(name="segnet", base_channels=64, depth=5)) - 29.5e6) < 0.05 * 29.5e6
    # GoogLeNet backbone at width 64: Szegedy et al.'s ~6 M (without the fc classifier)
    fcn = build_model(ModelConfig(name="fcn_googlenet", base_channels=64))
    backbone = sum(p.numel() for n, p in fcn.named_parameters() if not n.startswith("head"))
    assert 5.5e6 < backbone < 6.5e6


def test_every_model_is_documented_and_lists_frames_input():
    for name in NEW_MODELS:
        info = model_info(name)
        assert info.input_kind == "frames" and "paper 00" in info.paper
        assert info.builder.__doc__ and info.builder.temporal is False


@pytest.mark.parametrize("name", NEW_MODELS)
def test_sizes_that_are_not_multiples_of_the_stride_also_work(name):
    """Training crops are multiples of 16 (GUI) or anything >= 16 (CLI), not always of the stride."""
    model = tiny(name).train()
    for size in ((48, 80), (50, 70), (16, 40)):
        out = model(torch.randn(2, 1, *size))
        assert out.shape == (2, 3, *size)
    out.sum().backward()


@pytest.mark.parametrize("name", NEW_MODELS)
def test_learns_a_tiny_segmentation(name):
    """A few Adam steps on two 32x32 images of a bright disk lower the loss clearly (GRUU-Net with
    its paper's normalized focal loss, the others with weighted cross-entropy)."""
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    disks = torch.stack([(yy - 12) ** 2 + (xx - 14) ** 2 < 49, (yy - 20) ** 2 + (xx - 18) ** 2 < 64])
    x = disks[:, None].float() + 0.1 * torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    classes = disks.long()
    ones = torch.ones(2, 32, 32)
    shallow = {"gruunet": {"depth": 2, "options": (("iterations", 1),)}, "segnet": {"depth": 3}}
    model = tiny(name, **shallow.get(name, {})).train()
    loss_fn = normalized_focal_loss if name == "gruunet" else weighted_cross_entropy
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ce = []  # plain cross-entropy (the normalized focal loss keeps the scale of the hard pixels)
    for _ in range(12):
        logits = model(x)
        ce.append(weighted_cross_entropy(logits.detach(), classes, ones, ones).item())
        loss = loss_fn(logits, classes, ones, ones)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert min(ce[-3:]) < 0.6 * ce[0], ce


# ---------------------------------------------------------------- SegNet


def test_segnet_decoder_unpools_to_the_encoder_argmax_positions():
    model = tiny("segnet", depth=3).eval()
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


def test_segnet_output_depends_on_where_the_maxima_were():
    # train mode: batch statistics normalise the activations, which at initialisation are tiny
    # with eval-mode (unit) running statistics
    model = tiny("segnet", depth=2).train()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        feats, indices, sizes = model.encode(x)
        out = model.decode(feats, indices, sizes)
        # same pooled values, each maximum moved to the other column of its 2x2 window
        moved = [idx ^ 1 for idx in indices]
        out_moved = model.decode(feats, moved, sizes)
        assert torch.equal(model.decode(feats, [i.clone() for i in indices], sizes), out)
    assert (out - out_moved).abs().max() > 0.1 * out.std()


# ---------------------------------------------------------------- GRUU-Net


def test_gruunet_iterations_refine_with_shared_weights():
    one = tiny("gruunet", depth=3, options=(("iterations", 1),)).eval()
    three = tiny("gruunet", depth=3, options=(("iterations", 3),)).eval()
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


def test_gruunet_every_frdu_is_one_gru_step():
    model = tiny("gruunet", depth=3, options=(("iterations", 2),)).eval()
    calls = []
    model.gru.register_forward_hook(lambda mod, args, out: calls.append(out.shape))
    with torch.no_grad():
        model(torch.randn(1, 1, 16, 16))
    assert len(calls) == 2 * (2 * 3 - 1)  # iterations * FRDUs (3 down + 2 up)
    assert all(shape == (1, 4, 16, 16) for shape in calls)  # always at full resolution


def test_conv_gru_update_gate_closed_keeps_the_state():
    cell = ConvGRUCell(2, 3)
    x, h = torch.randn(1, 2, 5, 5), torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        cell.gates.bias[3:] = -50.0  # update gate u ~ 0
        torch.testing.assert_close(cell(x, h), h)
        cell.gates.bias[3:] = 50.0  # u ~ 1: the state becomes the candidate, in (-1, 1)
        out = cell(x, h)
    assert not torch.allclose(out, h) and out.abs().max() < 1


# ---------------------------------------------------------------- FCN-GoogLeNet


def test_fcn_googlenet_inception_widths_and_single_transposed_conv_head():
    model = build_model(ModelConfig(name="fcn_googlenet", base_channels=64, num_classes=2))
    widths = [m.out_channels for m in model.inception if hasattr(m, "out_channels")]
    assert widths == [256, 480, 512, 512, 512, 528, 832, 832, 1024]  # Szegedy et al., Table 1
    assert isinstance(model.head, nn.ConvTranspose2d)
    assert model.head.stride == (32, 32) and model.head.in_channels == 1024 and model.head.out_channels == 2
    small = tiny("fcn_googlenet").eval()
    with torch.no_grad():
        feats = small.inception(small.stem(torch.randn(1, 1, 64, 96)))
    assert feats.shape[-2:] == (2, 3)  # stride 32 before the transposed convolution


# ---------------------------------------------------------------- Tiramisu


def test_fc_densenet103_has_103_layers():
    model = build_model(ModelConfig(name="tiramisu", options=(("reference", True),)))
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convs) == 103 and model.stride == 32
    assert model.first.out_channels == 48
    assert model.bottleneck.out_channels == 15 * 16  # only the new maps go up


def test_tiramisu_blocks_option_and_validation():
    model = tiny("tiramisu", options=(("blocks", (2, 3, 2)),))
    assert model.stride == 2
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, 6, 10)).shape == (1, 3, 6, 10)
    with pytest.raises(ValueError):
        tiny("tiramisu", options=(("blocks", (2, 3)),))


# ---------------------------------------------------------------- DeepLabv3+


def test_deeplab_atrous_separable_aspp_and_strides():
    model = tiny("deeplabv3plus").eval()
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


def test_deeplab_trains_with_batch_of_one():
    model = tiny("deeplabv3plus").train()
    model(torch.randn(1, 1, 32, 32)).sum().backward()  # image pooling has no batch norm


# ---------------------------------------------------------------- option validation


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("segnet", {"depth": 6}),
        ("gruunet", {"options": (("iterations", 0),)}),
        ("fcn_googlenet", {"options": (("upsample_kernel", 31),)}),
        ("tiramisu", {"options": (("blocks", (0, 1, 1)),)}),
    ],
)
def test_bad_options_raise_value_error(name, overrides):
    with pytest.raises(ValueError):
        build_model(default_model_config(name, **overrides))
