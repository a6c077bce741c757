"""Losses.

:func:`weighted_cross_entropy` is eq. 9 of the U-LSTM paper: cross-entropy weighted per pixel
by ``w_c + w_d`` (class weight plus the separation weight of eq. 8, see
:mod:`napari_cellseq.core.data.targets`). Departure: the paper sums over pixels; we divide by
the number of valid pixels so the loss scale does not depend on crop or batch size.

:func:`normalized_focal_loss` is the normalized focal loss of GRUU-Net (paper 001); it takes
the same ``(N, K, H, W)`` logits and ``(N, H, W)`` classes / weights / valid mask as
:func:`weighted_cross_entropy`. :func:`edge_weights` turns ``(N, H, W)`` labels into the
per-pixel weights of the FCN-GoogLeNet blog's edge over-weighting (paper 003), to be multiplied
into the ``weights`` of either loss.

Training selects one of :data:`~napari_cellseq.core.config.LOSSES` (``TrainConfig.loss``); each comes with the per-pixel
weight map it is defined with (:data:`WEIGHTING`), built by the training set:

* ``"weighted_ce"``: :func:`weighted_cross_entropy` with ``w_c + w_d`` (U-LSTM paper eq. 8-9);
* ``"normalized_focal"``: :func:`normalized_focal_loss` with the class weights ``w_c`` only: the
  focal term itself is what GRUU-Net relies on "to deal with class imbalance and enforce object
  separation", so no separation map is added;
* ``"edge_weighted"``: :func:`weighted_cross_entropy` with ``w_c * edge_weights(labels)``.

:func:`default_loss` gives the loss of each network's paper (GRUU-Net: normalized focal;
FCN-GoogLeNet: edge weighted; every other network: weighted CE).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.nn import functional as F

from .config import LOSSES, Loss

__all__ = [
    "LOSSES",
    "WEIGHTING",
    "weighted_cross_entropy",
    "normalized_focal_loss",
    "edge_weights",
    "default_loss",
    "loss_function",
]

#: The per-pixel weight map each loss uses: ``"separation"`` = ``w_c + w_d`` (eq. 9),
#: ``"class"`` = ``w_c``, ``"edge"`` = ``w_c * edge_weights``.
WEIGHTING: dict[Loss, str] = {"weighted_ce": "separation", "normalized_focal": "class", "edge_weighted": "edge"}
_PAPER_LOSS: dict[str, Loss] = {"gruunet": "normalized_focal", "fcn_googlenet": "edge_weighted"}


def default_loss(model_name: str) -> Loss:
    """The loss of the paper of network ``model_name`` (``"weighted_ce"`` when it names none)."""
    return _PAPER_LOSS.get(model_name, "weighted_ce")


def loss_function(name: Loss, focal_gamma: float = 2.0):
    """``f(logits (N, K, H, W), classes (N, H, W), weights (N, H, W), valid (N, H, W)) -> scalar``
    of loss ``name`` (one of :data:`~napari_cellseq.core.config.LOSSES`); unknown names raise
    CellseqError."""
    from .errors import CellseqError

    if name == "normalized_focal":
        if focal_gamma < 0:
            raise CellseqError(f"focal gamma must be 0 or more, got {focal_gamma}")
        return functools.partial(normalized_focal_loss, gamma=focal_gamma)  # picklable
    if name in ("weighted_ce", "edge_weighted"):  # the edge weights are in the weight map
        return weighted_cross_entropy
    raise CellseqError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}")


def weighted_cross_entropy(
    logits: torch.Tensor, classes: torch.Tensor, weights: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Mean of ``valid * weights * CE(logits, classes)`` over valid pixels.

    logits : ``(N, K, H, W)``; classes : ``(N, H, W)`` int64; weights, valid : ``(N, H, W)``.
    Returns a scalar; zero (with gradient) when no pixel is valid.
    """
    ce = F.cross_entropy(logits.float(), classes, reduction="none")
    total = (ce * weights * valid).sum()
    return total / valid.sum().clamp_min(1.0)


def normalized_focal_loss(
    logits: torch.Tensor,
    classes: torch.Tensor,
    weights: torch.Tensor,
    valid: torch.Tensor,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Normalized focal loss of GRUU-Net (Wollmann et al., Medical Image Analysis 2019, paper 001).

    What the paper (the excerpt we have: highlights and sections 1-2.1) says: "Introduction of
    normalized focal loss for momentum based optimizers"; "a novel focal loss function for
    momentum-based optimizers, which enforces the network to learn separating touching
    objects"; "trained with a normalized pixel-wise focal cross-entropy loss to deal with class
    imbalance and enforce object separation". The excerpt stops before the loss equation, so
    the normalisation below is our reading of "normalized ... for momentum-based optimizers"
    (the focal weights rescaled to keep the loss scale, hence the effective step of a momentum
    optimizer, from shrinking as training progresses); it is checked by
    ``tests/core/test_losses.py`` (weights sum to the pixel count; ``gamma=0`` is plain CE).

    The focal loss (Lin et al. 2017) scales each pixel's cross-entropy by ``(1 - p_t)**gamma``,
    ``p_t`` being the predicted probability of the true class, so confidently right ("easy")
    pixels count less and hard ones (touching-cell borders) more. Wollmann et al. normalise
    these focal weights so that they sum to the number of pixels: the total loss scale then does
    not shrink as the network becomes confident, which keeps the effective step size of
    momentum-based optimizers (Adam, RMSProp with momentum) stable during training::

        f_i  = (1 - p_t,i)**gamma                      (focal weight of pixel i)
        fn_i = f_i * n_valid / sum_{j valid} f_j        (normalised: sum over valid = n_valid)
        loss = sum_{i valid} fn_i * weights_i * CE_i / n_valid

    ``weights`` are the per-pixel weights of :func:`weighted_cross_entropy` (class weights and
    separation weights, or :func:`edge_weights`), so ``gamma = 0`` gives exactly
    :func:`weighted_cross_entropy`. The focal factor ``f_i`` keeps its gradient (as in Lin et
    al.); the normaliser ``n_valid / sum f_j`` is treated as a constant (detached): it rescales
    the loss, it is not a quantity the network should learn to change.

    logits : ``(N, K, H, W)``; classes : ``(N, H, W)`` int64; weights, valid : ``(N, H, W)``.
    Returns a scalar; zero (with gradient) when no pixel is valid.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be non-negative, got {gamma}")
    logp = F.log_softmax(logits.float(), dim=1)
    logp_t = logp.gather(1, classes[:, None]).squeeze(1)
    ce = -logp_t
    valid = valid.to(ce.dtype)
    n_valid = valid.sum()
    if gamma == 0:
        focal = torch.ones_like(ce)
    else:
        focal = (1.0 - logp_t.exp()).clamp_min(0.0).pow(gamma)
    with torch.no_grad():
        scale = n_valid / (focal * valid).sum().clamp_min(1e-12)
        scale = torch.where(n_valid > 0, scale, torch.zeros_like(scale))
    total = (focal * scale * ce * weights * valid).sum()
    return total / n_valid.clamp_min(1.0)


def edge_weights(
    labels: torch.Tensor | np.ndarray,
    edge_weight: float = 10.0,
    width: int = 1,
    inner_only: bool = True,
) -> torch.Tensor:
    """Per-pixel loss weights that over-weight object edges (FCN-GoogLeNet blog, paper 003).

    The blog ("Segmenting complex cells with CNNs") separates touching embryonic stem cells by
    "overweight[ing] errors made on edge pixels during training"; it gives neither formula nor
    weight (its training figure shows, per image, the cell masks and a separate image of "cell
    edges", i.e. the cell outlines), so we define: a pixel is an *edge pixel* when some pixel of its ``(2*width+1)`` square
    neighbourhood carries a different label; edge pixels weigh ``edge_weight``, all others 1.
    With ``inner_only`` (default) only labelled pixels (``label > 0``) can be edge pixels, i.e.
    the edge is the inner rim of each object (its outline, and the line where two cells touch);
    otherwise the background rim around each object counts too. Beyond the frame border the
    labels are taken as continuing (replicate padding), so objects cut by the border get no edge
    there.

    labels : ``(H, W)`` or ``(N, H, W)`` integer instance labels (0 = background), or a class
        map (the edge is then wherever the class changes).
    Returns float32 weights of the same shape (a torch tensor on the labels' device).
    Multiply them into the ``weights`` of :func:`weighted_cross_entropy` or
    :func:`normalized_focal_loss`.
    """
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    lab = torch.as_tensor(np.asarray(labels) if isinstance(labels, np.ndarray) else labels)
    if lab.ndim not in (2, 3):
        raise ValueError(f"labels must be (H, W) or (N, H, W), got shape {tuple(lab.shape)}")
    squeeze = lab.ndim == 2
    x = lab.reshape(-1, 1, *lab.shape[-2:]).to(torch.float64)
    padded = F.pad(x, (width, width, width, width), mode="replicate")
    k = 2 * width + 1
    hi = F.max_pool2d(padded, k, stride=1)
    lo = -F.max_pool2d(-padded, k, stride=1)
    edge = (hi != x) | (lo != x)
    if inner_only:
        edge &= x > 0
    out = torch.where(edge, torch.tensor(float(edge_weight)), torch.tensor(1.0)).to(torch.float32)
    out = out[:, 0]
    return out[0] if squeeze else out
