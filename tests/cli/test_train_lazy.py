"""`napari-cellseq train` on a multi-page TIFF reads pages, never the whole file."""

from collections import Counter

import numpy as np
import tifffile

from napari_cellseq.cli import main
from napari_cellseq.core import pipeline
from napari_cellseq.core.io import sources
from napari_cellseq.core.synthetic import synthetic_timelapse


def test_train_reads_only_needed_pages(tmp_path, monkeypatch):
    n, painted = 40, [6, 25]
    image, labels = synthetic_timelapse(n_frames=8, shape=(64, 64), n_cells=3, seed=2, radius_range=(4.0, 8.0))
    movie = np.asarray(image)[np.arange(n) % 8]
    truth = np.zeros_like(np.asarray(labels, np.uint16)[np.arange(n) % 8])
    truth[painted] = np.asarray(labels, np.uint16)[[t % 8 for t in painted]]
    # compressed: read page by page (TiffFrames); uncompressed files are memory-mapped
    tifffile.imwrite(tmp_path / "movie.tif", movie, photometric="minisblack", compression="zlib")
    tifffile.imwrite(tmp_path / "labels.tif", truth, photometric="minisblack", compression="zlib")

    def whole(*_args, **_kw):
        raise AssertionError("the whole file was read")

    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", whole)
    monkeypatch.setattr(tifffile.TiffFile, "asarray", whole)
    monkeypatch.setattr(sources, "read_movie", whole)
    monkeypatch.setattr(pipeline, "_SAMPLE_PIXELS", 8 * 64 * 64)  # the normalisation sample: 8 frames
    pages: dict[str, Counter] = {"movie.tif": Counter(), "labels.tif": Counter()}
    page_asarray = tifffile.TiffPage.asarray

    def counted(page, *args, **kwargs):
        pages[page.parent.filehandle.name][page.index] += 1
        return page_asarray(page, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffPage, "asarray", counted)
    code = main(["train", "--image", str(tmp_path / "movie.tif"), "--labels", str(tmp_path / "labels.tif"),
                 "--out", str(tmp_path / "m.pt"), "--model", "unet", "--iterations", "2", "--crop", "32",
                 "--batch-size", "1", "--device", "cpu"])
    assert code == 0 and (tmp_path / "m.pt").is_file()
    sample = set(np.unique(np.linspace(0, n - 1, 8).round().astype(int)).tolist())
    assert set(pages["movie.tif"]) <= sample | set(painted)
    # labels: every page once to find the painted frames, then the painted pages again
    assert set(pages["labels.tif"]) == set(range(n))
    assert all(pages["labels.tif"][t] == 1 for t in range(n) if t not in painted)
