"""OME-Zarr images written by ome-zarr-py (formats 0.4 and 0.5): read level 0, write labels into
the image's labels/ group frame by frame, read them back with ome-zarr-py."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

pytest.importorskip("ome_zarr", reason="needs the ome-zarr extra")
import zarr  # noqa: E402
from ome_zarr.format import FormatV04, FormatV05  # noqa: E402
from ome_zarr.io import parse_url  # noqa: E402
from ome_zarr.reader import Label, Labels, Multiscales, Reader  # noqa: E402
from ome_zarr.writer import write_image  # noqa: E402

from napari_cellseq.cli import main  # noqa: E402
from napari_cellseq.core.errors import InputError  # noqa: E402
from napari_cellseq.core.io.sources import open_movie  # noqa: E402
from napari_cellseq.core.io.ome_zarr import (is_ome_zarr, ome_zarr_labels_writer, open_ome_zarr,  # noqa: E402
                                          write_ome_zarr_labels)


def _write(path, data, axes, fmt):
    store = parse_url(str(path), mode="w", fmt=fmt).store
    root = zarr.group(store=store, zarr_format=3 if isinstance(fmt, FormatV05) else 2)
    write_image(data, root, axes=axes, fmt=fmt, scale={a: 0.5 for a in axes if a in "yx"} if axes else None)
    return path


def _read_labels(path, name="cellseq"):
    nodes = list(Reader(parse_url(str(path)))())
    assert any(isinstance(s, Labels) for n in nodes for s in n.specs)
    (node,) = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
    assert any(isinstance(s, Multiscales) for s in node.specs)
    assert str(node.zarr.path).rstrip("/").endswith(f"labels/{name}")
    return node


@pytest.mark.parametrize("fmt", [FormatV04(), FormatV05()], ids=["0.4", "0.5"])
def test_labels_group_written_frame_by_frame_reads_back(small_movie, tmp_path, fmt):
    image, labels = small_movie
    path = _write(tmp_path / "movie.zarr", image, "tyx", fmt)
    assert is_ome_zarr(path) and not is_ome_zarr(tmp_path)
    movie = open_ome_zarr(path)
    assert movie.shape == image.shape
    np.testing.assert_array_equal(np.asarray(movie[3]), image[3])
    with ome_zarr_labels_writer(path) as writer:
        for t in range(len(labels)):  # one frame at a time, as segment does
            writer.write(t, labels[t])
    node = _read_labels(path)
    levels = [np.asarray(d) for d in node.data]
    np.testing.assert_array_equal(levels[0], labels)
    image_node = next(iter(Reader(parse_url(str(path)))()))
    assert [d.shape for d in node.data] == [d.shape for d in image_node.data]  # same pyramid
    np.testing.assert_array_equal(levels[1], labels[:, ::2, ::2])  # nearest neighbour
    axes = [a["name"] for a in node.metadata["axes"]]
    assert axes == ["t", "y", "x"]
    scale = node.metadata["coordinateTransformations"][0][0]["scale"]
    assert scale[-2:] == [0.5, 0.5]  # the image's pixel size
    # existing labels are kept unless overwrite
    with pytest.raises(InputError, match="exists"):
        write_ome_zarr_labels(path, labels)
    write_ome_zarr_labels(path, labels[:, :, ::-1], overwrite=True)
    np.testing.assert_array_equal(np.asarray(_read_labels(path).data[0]), labels[:, :, ::-1])


def test_failed_write_leaves_the_previous_labels(small_movie, tmp_path):
    image, labels = small_movie
    path = _write(tmp_path / "m.zarr", image, "tyx", FormatV05())
    write_ome_zarr_labels(path, labels)
    with pytest.raises(RuntimeError):
        with ome_zarr_labels_writer(path, overwrite=True) as writer:
            writer.write(0, np.zeros_like(labels[0]))
            raise RuntimeError("stopped")
    np.testing.assert_array_equal(np.asarray(_read_labels(path).data[0]), labels)
    with pytest.raises(RuntimeError):
        with ome_zarr_labels_writer(path, name="other") as writer:
            raise RuntimeError("stopped")
    assert not (path / "labels" / "other").exists()
    assert zarr.open_group(str(path / "labels"), mode="r").attrs["ome"]["labels"] == ["cellseq"]


def test_channels_and_3d(tmp_path):
    data = np.random.default_rng(0).integers(0, 500, (3, 2, 48, 48)).astype(np.uint16)
    path = _write(tmp_path / "tc.zarr", data, "tcyx", FormatV04())
    with pytest.raises(InputError, match="channel"):
        open_ome_zarr(path)
    np.testing.assert_array_equal(np.asarray(open_ome_zarr(path, channel=1)), data[:, 1])
    with open_movie(path, 0) as movie:
        assert movie.shape == (3, 48, 48)
    write_ome_zarr_labels(path, np.ones((3, 48, 48), np.uint16))
    assert np.asarray(_read_labels(path).data[0]).shape == (3, 1, 48, 48)  # c of size 1
    z = _write(tmp_path / "z.zarr", data, "czyx", FormatV05())
    with pytest.raises(InputError, match="3D"):
        open_ome_zarr(z, channel=0)


def test_cli_segments_ome_zarr_into_its_labels_group(small_movie, tmp_path, capsys):
    image, labels = small_movie
    path = _write(tmp_path / "movie.zarr", image, "tyx", FormatV05())
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    assert main(["train", "--image", str(path), "--labels", str(tmp_path / "lab.tif"), "--out", str(tmp_path / "m.pt"),
                 "--iterations", "2", "--width", "4", "--crop", "32", "--batch-size", "1", "--device", "cpu"]) == 0
    assert main(["segment", "--model", str(tmp_path / "m.pt"), "--image", str(path), "--out", str(path),
                 "--device", "cpu"]) == 0
    assert main(["segment", "--model", str(tmp_path / "m.pt"), "--image", str(path), "--out",
                 str(tmp_path / "ref.tif"), "--device", "cpu"]) == 0
    np.testing.assert_array_equal(np.asarray(_read_labels(path).data[0]), tifffile.imread(tmp_path / "ref.tif"))
    capsys.readouterr()
    assert main(["segment", "--model", str(tmp_path / "m.pt"), "--image", str(path), "--out", str(path)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["segment", "--model", str(tmp_path / "m.pt"), "--image", str(path), "--out", str(path),
                 "--labels-name", "second", "--device", "cpu"]) == 0
    assert sorted(zarr.open_group(str(path / "labels"), mode="r").attrs["ome"]["labels"]) == ["cellseq", "second"]
    # a labels group is training input too
    write_ome_zarr_labels(path, labels, name="truth")
    assert main(["train", "--image", str(path), "--labels", str(path / "labels" / "truth"), "--out",
                 str(tmp_path / "m2.pt"), "--iterations", "1", "--width", "4", "--crop", "32", "--device", "cpu"]) == 0
