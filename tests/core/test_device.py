"""Device choice, mixed precision and memory format (core.device)."""

import pytest
import torch

from napari_cellseq.core.device import autocast_dtype, available_devices, resolve_device, use_channels_last
from napari_cellseq.core.errors import CellseqError


def test_autocast_dtype():
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, True) is None and autocast_dtype(cpu, "off") is None
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16 and autocast_dtype(cpu, "fp16") is torch.float16
    with pytest.raises(CellseqError):
        autocast_dtype(cpu, "fp8")


def test_resolve_device():
    assert available_devices()[-1] == "cpu"
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device(available_devices()[0])
    with pytest.raises(CellseqError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_channels_last_by_device():
    assert use_channels_last(torch.device("cpu")) and use_channels_last(torch.device("cuda"))
    assert not use_channels_last(torch.device("mps"))
    assert not use_channels_last(torch.device("cpu"), False)
