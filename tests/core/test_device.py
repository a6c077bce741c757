"""Device choice, mixed precision and memory format (core.device)."""

import pytest
import torch

from napari_cellseq.core import device as device_module
from napari_cellseq.core.device import (autocast_dtype, available_devices, cpu_has_bf16_matrix_units,
                                        resolve_device, use_channels_last)
from napari_cellseq.core.errors import CellseqError


def test_autocast_dtype():
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, True) is None and autocast_dtype(cpu, "off") is None
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16 and autocast_dtype(cpu, "fp16") is torch.float16
    with pytest.raises(CellseqError):
        autocast_dtype(cpu, "fp8")


@pytest.mark.parametrize("units", [True, False])
def test_auto_precision_on_cpu_follows_the_matrix_units(monkeypatch, units):
    """auto: bfloat16 training only where the CPU has bfloat16 matrix units; inference float32."""
    monkeypatch.setattr(device_module, "cpu_has_bf16_matrix_units", lambda: units)
    cpu = torch.device("cpu")
    for amp in (True, "auto"):
        assert autocast_dtype(cpu, amp, training=True) is (torch.bfloat16 if units else None)
        assert autocast_dtype(cpu, amp, training=False) is None
    assert autocast_dtype(cpu, "off", training=True) is None and autocast_dtype(cpu, False, training=True) is None
    assert autocast_dtype(cpu, "bf16", training=True) is torch.bfloat16


def test_matrix_unit_probe_is_safe(monkeypatch):
    assert isinstance(cpu_has_bf16_matrix_units(), bool)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: 1 / 0, raising=False)
    assert cpu_has_bf16_matrix_units() is False  # a failing probe keeps float32
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert cpu_has_bf16_matrix_units() is False


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
