"""Export widget: ImageJ ROI sets and BioImage Model Zoo packages."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import roifile

from napari_cellseq.gui.export_widget import ExportWidget

from cellseq_gui_helpers import dock, errors


def test_export_imagej_rois(make_napari_viewer, gui_movie, tmp_path, notifications):
    _, labels = gui_movie
    viewer = make_napari_viewer()
    viewer.add_labels(labels.astype(np.int32), name="result")
    widget = dock(viewer, ExportWidget)
    assert widget.rois_button.enabled
    out = widget.export_rois(tmp_path / "cells")
    assert out.name == "cells.zip"
    rois = roifile.roiread(out)
    assert len(rois) == sum(len(np.unique(f)) - 1 for f in labels)
    assert {r.t_position for r in rois} == {t + 1 for t in range(len(labels)) if labels[t].any()}
    assert widget.export_rois(out) is None and "overwrite" in errors(notifications)[-1]


def test_export_model_zoo_package_in_a_worker(make_napari_viewer, qtbot, trained_unet, tmp_path, notifications):
    pytest.importorskip("bioimageio.core", reason="needs the bioimageio extra")
    viewer = make_napari_viewer()
    widget = dock(viewer, ExportWidget)
    assert not widget.zoo_button.enabled
    assert widget.export_model_zoo(tmp_path / "pkg.zip") is None  # no current model
    assert "no model" in errors(notifications)[-1]
    assert widget.load_model(trained_unet)
    assert widget.zoo_button.enabled
    worker = widget.export_model_zoo(tmp_path / "pkg.zip")
    assert worker is not None and not widget.zoo_button.enabled
    qtbot.waitUntil(lambda: widget._zoo_worker is None, timeout=240_000)
    assert widget.zoo_button.enabled
    assert not errors(notifications)[1:]
    with zipfile.ZipFile(tmp_path / "pkg.zip") as zf:
        assert "rdf.yaml" in zf.namelist()
