"""BioImage Model Zoo packages: export (format 0.5), offline validation, the zoo's own model test,
and segmenting with the package as with the original model file."""

from __future__ import annotations

import dataclasses
import sys
import zipfile

import numpy as np
import pytest
import tifffile
import torch
import yaml

pytest.importorskip("bioimageio.core", reason="needs the bioimageio extra")

from napari_cellseq.cli import main  # noqa: E402
from napari_cellseq.core.bioimageio import export_bioimageio, load_package  # noqa: E402
from napari_cellseq.core.bioimageio.architecture import CellseqZooModel  # noqa: E402
from napari_cellseq.core.checkpoint import Checkpoint, save_checkpoint  # noqa: E402
from napari_cellseq.core.config import DataConfig, PostprocessConfig, TrainConfig, to_dict  # noqa: E402
from napari_cellseq.core.errors import ModelFileError  # noqa: E402
from napari_cellseq.core.models import build_model, default_model_config  # noqa: E402
from napari_cellseq.core.pipeline import segment  # noqa: E402
from napari_cellseq.core.training import fit  # noqa: E402


def _rdf(path):
    with zipfile.ZipFile(path) as zf:
        return yaml.safe_load(zf.read("rdf.yaml")), set(zf.namelist())


@pytest.fixture(scope="module")
def trained_unet(small_movie, tmp_path_factory):
    """A small U-Net trained a little on the synthetic movie (so that it finds cells)."""
    image, labels = small_movie
    path = tmp_path_factory.mktemp("zoo") / "unet.pt"
    ckpt = fit(image, labels, path, model_config=default_model_config("unet", base_channels=4, depth=3),
               data_config=DataConfig(crop_size=64),
               train_config=TrainConfig(iterations=40, max_time=None, device="cpu", seed=0, calibrate=False))
    return path, ckpt


@pytest.fixture(scope="module")
def unet_package(trained_unet, small_movie):
    path, _ = trained_unet
    image, _ = small_movie
    out = path.with_name("unet.zip")
    export_bioimageio(path, out, image, authors=["Ada Lovelace"], test=False)  # tested below
    return out


def test_package_validates_offline_and_passes_the_zoo_model_test(unet_package):
    from bioimageio.core import test_description
    from bioimageio.spec import ValidationContext, load_description

    with ValidationContext(perform_io_checks=True):
        descr = load_description(unet_package)
    assert descr.validation_summary.status != "failed"
    assert str(descr.format_version).startswith("0.5")
    summary = test_description(unet_package)
    assert summary.status == "passed"
    names = " ".join(d.name for d in summary.details)
    assert "Reproduce test outputs from test inputs (pytorch_state_dict)" in names
    assert "Reproduce test outputs from test inputs (torchscript)" in names


def test_package_describes_network_normalisation_and_provenance(unet_package, trained_unet):
    _, ckpt = trained_unet
    rdf, names = _rdf(unet_package)
    stride = build_model(ckpt.model_config).stride
    assert rdf["format_version"].startswith("0.5") and rdf["license"] == "BSD-3-Clause"
    assert [a["name"] for a in rdf["authors"]] == ["Ada Lovelace"]
    assert any(c.get("doi") == "10.1007/978-3-319-24574-4_28" for c in rdf["cite"])
    assert {"napari-cellseq", "unet", "cell-segmentation"} <= set(rdf["tags"])
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    assert [a.get("id", a["type"]) for a in inp["axes"]] == ["batch", "channel", "y", "x"]
    for axis in inp["axes"][2:]:
        assert axis["size"]["step"] == stride and axis["size"]["min"] % stride == 0
    (pre,) = [p for p in inp["preprocessing"] if p["id"] == "scale_range"]
    assert (pre["kwargs"]["min_percentile"], pre["kwargs"]["max_percentile"]) == tuple(ckpt.data_config.percentiles)
    assert out["axes"][1]["channel_names"] == ["background", "interior", "boundary"]
    weights = rdf["weights"]
    arch = weights["pytorch_state_dict"]["architecture"]
    assert arch["callable"] == "CellseqZooModel" and len(arch["sha256"]) == 64
    assert arch["kwargs"]["model_config"] == to_dict(ckpt.model_config)
    assert weights["torchscript"]["parent"] == "pytorch_state_dict"
    assert {arch["source"], weights["pytorch_state_dict"]["source"], weights["torchscript"]["source"],
            rdf["documentation"]["source"], inp["test_tensor"]["source"], out["test_tensor"]["source"]} <= names
    with zipfile.ZipFile(unet_package) as zf:
        doc = zf.read(rdf["documentation"]["source"]).decode()
    assert "Post-processing that is not in the specification" in doc and "scale_range" in doc


def test_test_output_is_the_models_own_prediction(unet_package, trained_unet):
    """The stored output is the network's softmax on the spec-normalised stored input."""
    _, ckpt = trained_unet
    with zipfile.ZipFile(unet_package) as zf:
        x = np.load(zf.open("test_input.npy"))
        y = np.load(zf.open("test_output.npy"))
    lo, hi = np.percentile(x, ckpt.data_config.percentiles)
    net = ckpt.build("cpu")
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(((x - lo) / (hi - lo + 1e-6)).astype(np.float32))), 1)
    np.testing.assert_allclose(y, expected.numpy(), atol=1e-5)
    assert x.shape[-2] % net.stride == 0 and x.dtype == np.float32


def test_package_segments_like_the_original_model(unet_package, trained_unet, small_movie):
    path, ckpt = trained_unet
    image, _ = small_movie
    loaded = load_package(unet_package)
    assert loaded.model_config == ckpt.model_config and loaded.data_config == ckpt.data_config
    assert loaded.postprocess_config == ckpt.postprocess_config
    assert all(torch.equal(loaded.state_dict[k], ckpt.state_dict[k].cpu()) for k in ckpt.state_dict)
    from_zip = segment(image, unet_package, device="cpu")
    from_pt = segment(image, path, device="cpu")
    assert from_zip.max() > 0
    np.testing.assert_array_equal(from_zip, from_pt)


def test_cli_exports_and_segments_with_the_package(trained_unet, small_movie, tmp_path, capsys):
    path, _ = trained_unet
    image, _ = small_movie
    tifffile.imwrite(tmp_path / "img.tif", image)
    out = tmp_path / "pkg.zip"
    assert main(["export-bioimageio", str(path), "--out", str(out), "--image", str(tmp_path / "img.tif"),
                 "--frame", "2", "--author", "A. Person", "--no-test"]) == 0
    assert main(["export-bioimageio", str(path), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    for model, labels in ((out, "zip.tif"), (path, "pt.tif")):
        assert main(["segment", "--model", str(model), "--image", str(tmp_path / "img.tif"),
                     "--out", str(tmp_path / labels), "--device", "cpu"]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "zip.tif"), tifffile.imread(tmp_path / "pt.tif"))


def test_ulstm_is_exported_with_a_fixed_time_window_and_state_unrolled(tmp_path, small_movie):
    image, _ = small_movie
    config = default_model_config("ulstm", base_channels=4, depth=2)
    torch.manual_seed(0)
    ckpt = Checkpoint(config, DataConfig(), build_model(config).state_dict())
    out = tmp_path / "ulstm.zip"
    export_bioimageio(ckpt, out, image, window=3, frame=1)  # runs bioimageio.core's test of both formats
    rdf, _ = _rdf(out)
    axes = rdf["inputs"][0]["axes"]
    assert [a.get("id", a["type"]) for a in axes] == ["batch", "time", "channel", "y", "x"]
    assert axes[1]["size"] == 3
    assert rdf["config"]["napari_cellseq"]["time_window"] == 3
    (pre,) = [p for p in rdf["inputs"][0]["preprocessing"] if p["id"] == "scale_range"]
    assert pre["kwargs"]["axes"] == ["time", "channel", "y", "x"]  # percentiles over the window
    with zipfile.ZipFile(out) as zf:
        x = np.load(zf.open("test_input.npy"))
        y = np.load(zf.open("test_output.npy"))
    assert x.shape[:3] == (1, 3, 1)
    np.testing.assert_array_equal(x[0, :, 0], image[1:4].astype(np.float32))  # frames 1-3, 96x96 whole
    # the window's output is the network run frame by frame with its state carried from zero
    lo, hi = np.percentile(x, ckpt.data_config.percentiles)
    xn = torch.from_numpy(((x - lo) / (hi - lo + 1e-6)).astype(np.float32))
    net = ckpt.build("cpu")
    state, frames = None, []
    with torch.no_grad():
        for t in range(3):
            logits, state = net(xn[:, t:t + 1], state)
            frames.append(torch.softmax(logits, dim=2))
    np.testing.assert_allclose(y, torch.cat(frames, dim=1).numpy(), atol=1e-5)
    loaded = load_package(out)
    assert loaded.model_config == config


def test_architecture_source_rebuilds_the_network():
    config = default_model_config("unet", base_channels=4, depth=3)
    zoo = CellseqZooModel(to_dict(config))
    assert zoo.stride == 4 and not zoo.temporal
    probs = zoo(torch.zeros(1, 1, 8, 8))
    assert probs.shape == (1, 3, 8, 8)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 8, 8))


def test_foreign_or_damaged_package_is_refused_clearly(unet_package, tmp_path):
    rdf, _ = _rdf(unet_package)
    del rdf["config"]
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(unet_package) as src, zipfile.ZipFile(foreign, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, yaml.safe_dump(rdf) if name == "rdf.yaml" else src.read(name))
    with pytest.raises(ModelFileError, match="did not export"):
        load_package(foreign)
    assert main(["segment", "--model", str(foreign), "--image", str(foreign), "--out", str(tmp_path / "x.tif")]) == 2


def test_export_refuses_bad_arguments(trained_unet, tmp_path):
    from napari_cellseq.core.errors import InputError

    path, ckpt = trained_unet
    with pytest.raises(InputError, match=r"\.zip"):
        export_bioimageio(path, tmp_path / "pkg.yaml")
    with pytest.raises(InputError, match="frame"):
        export_bioimageio(path, tmp_path / "pkg.zip", np.zeros((2, 64, 64), np.float32) + np.arange(64), frame=5)
    assert not (tmp_path / "pkg.zip").exists()


def test_missing_extra_is_one_clear_line(trained_unet, tmp_path, monkeypatch, capsys):
    path, _ = trained_unet
    monkeypatch.setitem(sys.modules, "bioimageio.core", None)  # import fails as when not installed
    assert main(["export-bioimageio", str(path), "--out", str(tmp_path / "p.zip")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'napari-cellseq[bioimageio]'" in err[0]
    assert not (tmp_path / "p.zip").exists()


def test_network_that_cannot_be_traced_gets_state_dict_weights_only(tmp_path, small_movie):
    """SegNet's un-pooling sizes do not trace: the package says so and still validates."""
    image, _ = small_movie
    config = default_model_config("segnet", base_channels=4, depth=2)
    ckpt = Checkpoint(config, DataConfig(), build_model(config).state_dict())
    out = export_bioimageio(ckpt, tmp_path / "segnet.zip", image, test=False)  # validated; tested: unet, ulstm
    rdf, _ = _rdf(out)
    assert [k for k, v in rdf["weights"].items() if v] == ["pytorch_state_dict"]
    with zipfile.ZipFile(out) as zf:
        assert "no `torchscript` weights" in zf.read(rdf["documentation"]["source"]).decode()
