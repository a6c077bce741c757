"""Losses: normalized focal loss (GRUU-Net, paper 001) and edge weights (FCN-GoogLeNet blog, paper 003)."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from napari_cellseq.core.losses import edge_weights, normalized_focal_loss, weighted_cross_entropy


def _batch(seed: int = 0, n: int = 2, k: int = 3, h: int = 5, w: int = 7):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, h, w, generator=g) * 2
    classes = torch.randint(0, k, (n, h, w), generator=g)
    weights = 1 + 3 * torch.rand(n, h, w, generator=g)
    valid = (torch.rand(n, h, w, generator=g) > 0.3).float()
    return logits, classes, weights, valid


def test_gamma_zero_is_weighted_cross_entropy():
    logits, classes, weights, valid = _batch()
    expected = weighted_cross_entropy(logits, classes, weights, valid)
    got = normalized_focal_loss(logits, classes, weights, valid, gamma=0.0)
    torch.testing.assert_close(got, expected)


def test_focal_weights_sum_to_number_of_valid_pixels():
    """With every pixel equally hard the normalised focal weights are all 1: plain CE, any gamma."""
    logits = torch.zeros(2, 3, 4, 4)  # p_t = 1/3 everywhere
    classes = torch.randint(0, 3, (2, 4, 4))
    ones = torch.ones(2, 4, 4)
    for gamma in (0.5, 2.0, 5.0):
        loss = normalized_focal_loss(logits, classes, ones, ones, gamma=gamma)
        assert loss.item() == pytest.approx(math.log(3.0), rel=1e-6)


def test_hand_computed_two_pixels_and_easy_pixels_down_weighted():
    # pixel 0 easy (p_t ~ 0.98), pixel 1 hard (p_t ~ 0.12); two classes
    logits = torch.tensor([[[[4.0, -1.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
    classes = torch.tensor([[[0, 0]]])
    ones = torch.ones(1, 1, 2)
    p = torch.softmax(logits, dim=1)[0, 0, 0]  # p_t of both pixels
    ce = -p.log()
    f = (1 - p) ** 2
    expected = (f / f.sum() * 2 * ce).sum() / 2
    loss = normalized_focal_loss(logits, classes, ones, ones, gamma=2.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # the easy pixel counts less than in CE: the loss moves towards the hard pixel's CE
    plain = weighted_cross_entropy(logits, classes, ones, ones)
    assert plain.item() < loss.item() < ce[1].item()
    # and the easy pixel's gradient shrinks relative to the hard pixel's
    def grad_ratio(fn):
        x = logits.clone().requires_grad_(True)
        fn(x).backward()
        g = x.grad[0].abs().sum(dim=0)[0]
        return (g[0] / g[1]).item()

    focal_ratio = grad_ratio(lambda x: normalized_focal_loss(x, classes, ones, ones, gamma=2.0))
    ce_ratio = grad_ratio(lambda x: weighted_cross_entropy(x, classes, ones, ones))
    assert focal_ratio < 0.1 * ce_ratio


def test_ignored_pixels_do_not_count():
    logits, classes, weights, valid = _batch(1)
    loss = normalized_focal_loss(logits, classes, weights, valid)
    changed = logits.clone()
    changed[valid[:, None].expand_as(logits) == 0] = 100.0  # garbage where not valid
    assert normalized_focal_loss(changed, classes, weights, valid).item() == pytest.approx(loss.item(), rel=1e-6)


def test_finite_and_zero_when_every_pixel_is_ignored():
    logits, classes, weights, _ = _batch(2)
    logits.requires_grad_(True)
    loss = normalized_focal_loss(logits, classes, weights, torch.zeros_like(weights))
    assert torch.isfinite(loss) and loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_scale_does_not_shrink_as_predictions_get_confident():
    """Un-normalised focal loss vanishes as the network gets right; the normalised one keeps the
    CE scale of the remaining errors (why the paper normalises for momentum optimizers)."""
    classes = torch.zeros(1, 1, 4, dtype=torch.long)
    ones = torch.ones(1, 1, 4)
    for margin in (2.0, 6.0):
        logits = torch.zeros(1, 2, 1, 4)
        logits[0, 0] = margin
        ce = F.cross_entropy(logits, classes, reduction="none")
        focal = normalized_focal_loss(logits, classes, ones, ones, gamma=2.0)
        assert focal.item() == pytest.approx(ce.mean().item(), rel=1e-5)


def test_negative_gamma_rejected():
    logits, classes, weights, valid = _batch()
    with pytest.raises(ValueError):
        normalized_focal_loss(logits, classes, weights, valid, gamma=-1.0)


LABELS = np.array(
    [
        [0, 0, 0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 2, 2, 0, 0],
        [0, 1, 1, 1, 2, 2, 0, 0],
        [0, 1, 1, 1, 2, 2, 0, 0],
        [0, 1, 1, 1, 2, 2, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],
    ],
    dtype=np.uint16,
)


def test_edge_weights_hand_computed_inner_rim():
    w = edge_weights(LABELS, edge_weight=10.0)
    expected = np.where(LABELS > 0, 10.0, 1.0)
    expected[2, 2] = expected[3, 2] = 1.0  # the only pixels of cell 1 whose 3x3 square is all 1
    # every pixel of cell 2 touches cell 1 or the background: all edge
    assert w.dtype == torch.float32 and w.shape == LABELS.shape
    np.testing.assert_array_equal(w.numpy(), expected)


def test_edge_weights_hand_computed_with_background_rim():
    w = edge_weights(torch.as_tensor(LABELS.astype(np.int64)), edge_weight=5.0, inner_only=False)
    expected = np.full(LABELS.shape, 5.0)
    expected[2, 2] = expected[3, 2] = 1.0
    expected[:, 7] = 1.0  # background two columns away from cell 2
    np.testing.assert_array_equal(w.numpy(), expected)


def test_edge_weights_width_and_batch_and_frame_border():
    lab = np.array([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0]])
    w = edge_weights(lab, edge_weight=3.0)
    # beyond the frame the labels continue: only the column next to the background is edge
    np.testing.assert_array_equal(w.numpy(), [[1, 1, 3, 1]] * 3)
    w2 = edge_weights(lab, edge_weight=3.0, width=2)
    np.testing.assert_array_equal(w2.numpy(), [[1, 3, 3, 1]] * 3)
    batch = edge_weights(np.stack([lab, lab[:, ::-1]]), edge_weight=3.0)
    assert batch.shape == (2, 3, 4)
    np.testing.assert_array_equal(batch[1].numpy(), [[1, 3, 1, 1]] * 3)


def test_edge_weights_plug_into_the_loss():
    logits = _batch(3, n=1, k=2, h=6, w=8)[0]
    classes = torch.as_tensor((LABELS > 0).astype(np.int64))[None]
    ones = torch.ones(1, 6, 8)
    w = edge_weights(LABELS[None])
    ce = F.cross_entropy(logits, classes, reduction="none")
    torch.testing.assert_close(weighted_cross_entropy(logits, classes, w, ones), (w * ce).mean())
    torch.testing.assert_close(normalized_focal_loss(logits, classes, w, ones, gamma=0.0), (w * ce).mean())


def test_edge_weights_rejects_bad_input():
    with pytest.raises(ValueError):
        edge_weights(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError):
        edge_weights(LABELS, width=0)
