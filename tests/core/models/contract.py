"""The model contract every registered network keeps, as test classes to subclass.

One test file per network (``test_unet.py``, ...) subclasses :class:`FrameModelContract` or
:class:`TemporalModelContract`, setting ``name`` (its registry name) and, where the network
needs them, the class attributes below; network-specific tests live next to it in that file.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from napari_cellseq.core.config import ModelConfig
from napari_cellseq.core.errors import InputError
from napari_cellseq.core.inference import Predictor
from napari_cellseq.core.losses import weighted_cross_entropy
from napari_cellseq.core.models import (FrameModel, TemporalModel, build_model, default_model_config,
                                        model_info)


def _tensors(state):
    """The tensors of a state (nested tuples and lists)."""
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, (tuple, list)):
        for s in state:
            yield from _tensors(s)


class ModelContract:
    """Tests every network passes: registry entry, shapes, stride, gradients, save/load,
    channels-last, inference with tiling."""

    name: ClassVar[str]
    base: ClassVar[type]
    small: ClassVar[dict[str, Any]] = {}  # config overrides (besides base 4, 3 classes) for speed
    any_size: ClassVar[bool] = True  # forward takes sizes that are not multiples of the stride

    @pytest.fixture(autouse=True)
    def _one_thread(self):
        """Tiny tensors: a second OpenMP thread only adds synchronisation on a busy 2-core machine."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(threads)

    def config(self, **overrides: Any) -> ModelConfig:
        return default_model_config(self.name, **{"base_channels": 4, "num_classes": 3, **self.small, **overrides})

    def build(self, **overrides: Any) -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model(self.config(**overrides))

    @staticmethod
    def run(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Frames ``x (N, C, H, W)`` -> logits ``(N, K, H, W)`` for either contract (temporal
        models: N sequences of one frame)."""
        if model.temporal:
            logits, _ = model(x[:, None])
            return logits[:, 0]
        return model(x)

    # ------------------------------------------------------------------- registry and base class

    def test_builds_from_its_config_and_its_base_class_states_its_kind(self):
        config = self.config()
        model = build_model(config)
        info = model_info(self.name)
        assert isinstance(model, self.base) and type(model) is info.builder
        assert model.config == config
        assert model.temporal is info.temporal is issubclass(self.base, TemporalModel)
        assert info.input_kind == ("time-lapse" if model.temporal else "frames")
        assert "paper 00" in info.paper and info.builder.__doc__  # cites a paper of /work/shared/papers
        assert isinstance(model.stride, int) and model.stride >= 1

    # ------------------------------------------------------------------- shapes and stride

    def test_output_shape_on_valid_odd_sizes(self):
        model = self.build().eval()
        s = model.stride
        with torch.no_grad():
            assert self.run(model, torch.randn(2, 1, 3 * s, 5 * s)).shape == (2, 3, 3 * s, 5 * s)

    def test_stride_errors_name_the_sizes_to_use(self):
        model = self.build().eval()
        s = model.stride
        model.check_size(2 * s, 3 * s)
        assert model.padded_size(2 * s + 1, 3 * s) == (3 * s, 3 * s)
        if s > 1:
            with pytest.raises(InputError, match=f"multiples of {s}, got {2 * s + 1}x{3 * s}: use height "
                                                 f"{2 * s} or {3 * s} and width {3 * s}"):
                model.check_size(2 * s + 1, 3 * s)
        with pytest.raises(InputError, match=f"use height {s} and width {s}"):
            model.check_size(0, 0)

    def test_sizes_that_are_not_multiples_of_the_stride(self):
        """Training crops are multiples of 16 (GUI) or anything >= 16 (CLI), not always of the
        stride: networks that can take them give outputs of the input's size (and train), the
        others refuse with the size error."""
        model = self.build().train()
        s = model.stride
        for size in ((48, 80), (50, 70), (16, 40)):
            x = torch.randn(2, 1, *size)
            if self.any_size or (size[0] % s == 0 and size[1] % s == 0):
                out = self.run(model, x)
                assert out.shape == (2, 3, *size)
                out.sum().backward()
            else:
                with pytest.raises(InputError, match=f"multiples of {s}"):
                    self.run(model, x)

    # ------------------------------------------------------------------- training

    def test_backward_reaches_every_parameter(self):
        model = self.build().train()
        s = model.stride
        out = self.run(model, torch.randn(2, 1, 2 * s, 3 * s))
        out.float().pow(2).mean().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())

    # ------------------------------------------------------------------- weights and memory format

    def test_save_load_round_trip_gives_identical_outputs(self):
        model = self.build().train()
        s = model.stride
        self.run(model, torch.randn(2, 1, 2 * s, 2 * s))  # move any batch-norm running statistics
        model.eval()
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        buffer.seek(0)
        torch.manual_seed(123)  # another initialisation, overwritten by the load
        clone = build_model(model.config).eval()
        clone.load_state_dict(torch.load(buffer, weights_only=True))
        x = torch.randn(1, 1, 2 * s, 2 * s)
        with torch.no_grad():
            assert torch.equal(self.run(model, x), self.run(clone, x))

    def test_channels_last_gives_the_same_logits(self):
        model = self.build().eval()
        s = max(model.stride, 8)
        x = torch.randn(2, 1, 3 * s, 4 * s)
        with torch.no_grad():
            plain = self.run(model, x)
            model.to(memory_format=torch.channels_last)
            fast = self.run(model, x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)

    # ------------------------------------------------------------------- inference

    def test_inference_pads_odd_frames_and_tiles_agree(self):
        model = self.build().eval()
        movie = np.random.default_rng(0).random((2, 53, 71)).astype(np.float32)
        whole = dict(Predictor(model, torch.device("cpu"), tile=512).predict(movie))
        tiled = dict(Predictor(model, torch.device("cpu"), tile=40, overlap=16).predict(movie))
        for t in (0, 1):
            assert whole[t].shape == (3, 53, 71)
            np.testing.assert_allclose(whole[t].sum(axis=0), 1.0, atol=1e-5)
            # tiles see less context at their borders; blended interiors stay close to the whole
            assert np.abs(whole[t] - tiled[t]).mean() < 0.05


class FrameModelContract(ModelContract):
    """The contract of :class:`~napari_cellseq.core.models.FrameModel` networks."""

    base = FrameModel
    learn: ClassVar[dict[str, Any]] = {}  # config overrides for the learning test (shallower nets)
    loss: ClassVar = staticmethod(weighted_cross_entropy)  # the loss the network's paper trains with

    def test_frames_of_a_batch_are_independent(self):
        model = self.build().train()
        s = max(model.stride, 8)
        x = torch.randn(3, 1, 2 * s, 2 * s)
        for m in model.modules():  # running statistics of one batch (at initialisation they are
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):  # (0, 1): SegNet's output
                m.momentum = None  # would then not depend on its input at all)
        with torch.no_grad():
            model(x)
        model.eval()
        y = x.clone()
        y[0] = torch.randn(1, 2 * s, 2 * s)  # only frame 0 differs
        with torch.no_grad():
            a, b = model(x), model(y)
        assert (a[0] - b[0]).abs().max() > 0
        torch.testing.assert_close(a[1:], b[1:], atol=1e-6, rtol=0)

    def test_learns_a_tiny_segmentation(self):
        """A few Adam steps on two 32x32 images of a bright disk lower the loss clearly (with the
        network's loss; plain cross-entropy measured, the normalized focal loss keeps the scale of
        the hard pixels)."""
        yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
        disks = torch.stack([(yy - 12) ** 2 + (xx - 14) ** 2 < 49, (yy - 20) ** 2 + (xx - 18) ** 2 < 64])
        x = disks[:, None].float() + 0.1 * torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        classes = disks.long()
        ones = torch.ones(2, 32, 32)
        model = self.build(**self.learn).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        ce = []
        for _ in range(12):
            logits = model(x)
            ce.append(weighted_cross_entropy(logits.detach(), classes, ones, ones).item())
            loss = self.loss(logits, classes, ones, ones)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert min(ce[-3:]) < 0.6 * ce[0], ce


class TemporalModelContract(ModelContract):
    """The contract of :class:`~napari_cellseq.core.models.TemporalModel` networks: a state that
    continues the sequence, ``init_state``, ``advance`` and ``detach_state``."""

    base = TemporalModel

    def test_state_continues_the_sequence(self):
        model = self.build().eval()
        s = max(model.stride, 8)
        torch.manual_seed(1)
        x = torch.randn(2, 4, 1, 2 * s, 3 * s)
        with torch.no_grad():
            whole, _ = model(x)
            state, frames = None, []
            for t in range(4):
                out, state = model(x[:, t:t + 1], state)
                frames.append(out)
        assert whole.shape == (2, 4, 3, 2 * s, 3 * s)
        torch.testing.assert_close(torch.cat(frames, dim=1), whole, atol=1e-5, rtol=0)

    def test_init_state_equals_no_state(self):
        model = self.build().eval()
        s = max(model.stride, 8)
        x = torch.randn(2, 2, 1, 2 * s, 3 * s)
        with torch.no_grad():
            a, sa = model(x)
            b, sb = model(x, model.init_state(2, 2 * s, 3 * s))
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
        torch.testing.assert_close(sa, sb, atol=1e-6, rtol=0)
        if model.stride > 1:
            with pytest.raises(InputError, match=f"multiples of {model.stride}"):
                model.init_state(1, 2 * s + 1, 3 * s)

    def test_advance_gives_the_state_of_forward(self):
        model = self.build().eval()
        s = max(model.stride, 8)
        torch.manual_seed(2)
        x = torch.randn(2, 3, 1, 2 * s, 3 * s)
        with torch.no_grad():
            _, first = model(x[:, :1])
            _, expected = model(x[:, 1:], first)
            got = model.advance(x[:, 1:], model.advance(x[:, :1]))
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)

    def test_detached_state_cuts_the_graph(self):
        model = self.build().train()
        s = max(model.stride, 8)
        x = torch.randn(1, 4, 1, 2 * s, 2 * s)
        _, state = model(x[:, :2])
        detached = model.detach_state(state)
        leaves = list(_tensors(detached))
        assert leaves and all(not t.requires_grad for t in leaves)
        assert model.detach_state(None) is None
        logits, _ = model(x[:, 2:], detached)
        logits.mean().backward()  # does not reach into the first chunk's graph
