import io
import os
import pickle
import zipfile

import pytest
import torch

from napari_cellseq.core.checkpoint import FORMAT_VERSION, Checkpoint, load_checkpoint, save_checkpoint
from napari_cellseq.core.config import DataConfig, ModelConfig
from napari_cellseq.core.errors import ModelFileError
from napari_cellseq.core.models import build_model


def make(tmp_path, **kw):
    config = ModelConfig(base_channels=4)
    ckpt = Checkpoint(config, DataConfig(crop_size=64), build_model(config).state_dict(), training={"iterations": 7})
    return save_checkpoint(ckpt, tmp_path / "m.pt")


def test_round_trip(tmp_path):
    path = make(tmp_path)
    ckpt = load_checkpoint(path)
    assert ckpt.model_config == ModelConfig(base_channels=4)
    assert ckpt.data_config.crop_size == 64 and ckpt.training["iterations"] == 7
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == FORMAT_VERSION
    assert raw["versions"]["torch"] == str(torch.__version__)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_payload_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"magic": "napari-cellseq model", "x": _Payload()}, path)
    with pytest.raises(ModelFileError, match="refused without running it"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_newer_format_is_refused(tmp_path):
    path = make(tmp_path)
    raw = torch.load(path, weights_only=True)
    raw["format_version"] = FORMAT_VERSION + 1
    torch.save(raw, path)
    with pytest.raises(ModelFileError, match="upgrade napari-cellseq"):
        load_checkpoint(path)


def test_not_a_model_file(tmp_path):
    path = tmp_path / "x.pt"
    path.write_text("hello")
    with pytest.raises(ModelFileError, match="could not be read"):
        load_checkpoint(path)
    with pytest.raises(ModelFileError, match="no model file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_weights_for_another_config_are_refused(tmp_path):
    path = make(tmp_path)
    raw = torch.load(path, weights_only=True)
    raw["model_config"]["base_channels"] = 8
    torch.save(raw, path)
    with pytest.raises(ModelFileError, match="do not fit"):
        load_checkpoint(path)
