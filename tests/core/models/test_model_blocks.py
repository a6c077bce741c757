"""Shared building blocks (core.models.blocks)."""

import torch
from torch import nn

from napari_cellseq.core.models.blocks import GroupNorm, make_norm


def test_group_norm_is_torchs_in_float32_with_the_same_parameters():
    torch.manual_seed(0)
    ours, theirs = make_norm("group", 16), nn.GroupNorm(8, 16)
    assert isinstance(ours, GroupNorm) and ours.num_groups == 8
    with torch.no_grad():
        ours.weight.normal_(), ours.bias.normal_()
    theirs.load_state_dict(ours.state_dict())  # same keys: model files are unchanged
    x = torch.randn(2, 16, 12, 10).contiguous(memory_format=torch.channels_last)
    assert torch.equal(ours(x), theirs(x))


def test_group_norm_of_bfloat16_on_cpu_is_computed_in_float32_and_given_back_in_bfloat16():
    torch.manual_seed(0)
    norm = make_norm("group", 16)
    x = (3 * torch.randn(2, 16, 12, 10) + 5).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    y = norm(x)
    assert y.dtype == torch.bfloat16
    reference = nn.functional.group_norm(x.detach().float(), 8, norm.weight, norm.bias, norm.eps)
    assert torch.allclose(y.float(), reference, atol=2e-2)  # bfloat16 rounding of the output only
    y.float().sum().backward()  # gradients reach the bfloat16 input and the float32 parameters
    assert x.grad is not None and x.grad.dtype == torch.bfloat16 and norm.weight.grad is not None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conv = nn.Conv2d(16, 16, 3, padding=1)
        assert norm(conv(x.detach().float())).dtype == torch.bfloat16
