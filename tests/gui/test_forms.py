"""The widgets' form logic without Qt: reasons Train/Segment/Export are off, requests, choices, model files."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest

from napari_cellseq.core.builtin import DEFAULT_INIT
from napari_cellseq.core.config import DEVICES, LOSSES, OPTIMIZERS, OUTPUTS, SAMPLINGS, TARGETS
from napari_cellseq.core.errors import CellseqError
from napari_cellseq.gui._forms import (
    CHECKPOINT_EVERY_S,
    AnnotateForm,
    ExportForm,
    LayerFacts,
    SegmentForm,
    TrainForm,
    train_request,
)

IMAGE = LayerFacts(name="nuclei", shape=(20, 700, 1100))
ANNOTATIONS = LayerFacts(name="nuclei annotations", shape=(20, 700, 1100), annotated=(0, 3), background=65535)


def _form(**kw) -> TrainForm:
    base = dict(image=IMAGE, annotations=ANNOTATIONS, model="unet", model_file="/tmp/m.pt")
    return TrainForm(**{**base, **kw})


def test_forms_import_neither_qt_nor_napari():
    code = ("import sys, napari_cellseq.gui._forms; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'qtpy', 'PyQt6', 'PyQt5', 'PySide6', 'napari', 'magicgui'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "[]"


def test_train_reasons_name_the_problem_and_the_fix():
    assert _form().problem() is None
    assert "open an image" in _form(image=None).problem()
    assert "Annotate widget" in _form(annotations=None).problem()
    empty = replace(ANNOTATIONS, annotated=())
    assert _form(annotations=empty).problem() == "paint at least one frame of 'nuclei annotations'"
    small = replace(ANNOTATIONS, shape=(20, 512, 512))
    assert _form(annotations=small).problem().startswith(
        "labels layer shape (20, 512, 512) differs from image (20, 700, 1100)")
    assert "RGB" in _form(image=replace(IMAGE, rgb=True)).problem()
    assert "(Y, X) images" in _form(image=replace(IMAGE, shape=(2, 20, 70, 110)),
                                    annotations=replace(ANNOTATIONS, shape=(2, 20, 70, 110))).problem()
    assert "not annotated" in _form(validation=5).problem()
    assert "partly annotated" in _form(validation=3, annotations=replace(ANNOTATIONS, partial=(3,))).problem()
    only = replace(ANNOTATIONS, annotated=(3,))
    assert "nothing is left to train on" in _form(validation=3, annotations=only).problem()
    assert _form(validation=3).problem() is None
    assert "no current model to continue" in _form(start="current").problem()
    assert _form(start="current", current_model="/tmp/old.pt").problem() is None
    assert "multiple of 16" in _form(crop=100).problem()
    assert "model file" in _form(model_file="").problem()


def test_train_request_turns_values_into_configs():
    kw = train_request(_form(unit="iterations", budget=7, crop=96, batch=3, lr=1e-3, target="classes",
                             loss="edge_weighted", sampling="balanced", optimizer="rmsprop", device="cpu",
                             validation=3, annotations=replace(ANNOTATIONS, partial=(0,), background=4000),
                             start="random"),  # (no built-in learnt classes: the widget switches to random)
                       image="IMG", labels="LAB")
    assert kw["image"] == "IMG" and kw["labels"] == "LAB"
    tc, dc = kw["train_config"], kw["data_config"]
    assert (tc.iterations, tc.max_time, tc.batch_size, tc.lr, tc.loss, tc.optimizer, tc.device) == \
        (7, None, 3, 1e-3, "edge_weighted", "rmsprop", "cpu")
    assert tc.checkpoint_every == CHECKPOINT_EVERY_S
    assert (dc.crop_size, dc.target, dc.sampling) == (96, "classes", "balanced")
    assert kw["model_config"].name == "unet" and kw["init"] == "random"
    assert train_request(_form(), "I", "L")["init"] == DEFAULT_INIT  # the default start: "builtin"
    assert kw["partial_frames"] == (0,) and kw["background_label"] == 4000 and kw["validation_frame"] == 3
    minutes = train_request(_form(unit="minutes", budget=2), "I", "L")["train_config"]
    assert minutes.max_time == 120 and minutes.iterations is None
    cont = train_request(_form(start="current", current_model="/tmp/old.pt"), "I", "L")
    assert cont["init"] == "/tmp/old.pt" and cont["model_config"] is None  # the file decides
    with pytest.raises(CellseqError, match="paint at least one frame"):
        train_request(_form(annotations=replace(ANNOTATIONS, annotated=())), "I", "L")


def test_train_start_from_builtin_current_file_or_random(tmp_path):
    """"start from": the built-in of the network and target, the current model, a file, random."""
    from napari_cellseq.gui._forms import start_choices

    assert _form().start == DEFAULT_INIT  # the one default the lead switches after measuring
    assert _form(start="builtin").problem() is None  # unet and ulstm have built-ins for cells
    assert _form(start="builtin", model="ulstm").problem() is None
    assert "no built-in weights for segnet (only for ulstm, unet)" in _form(start="builtin", model="segnet").problem()
    assert "not classes" in _form(start="builtin", target="classes").problem()
    assert _form(start="random", model="segnet", target="classes").problem() is None
    assert "start file" in _form(start="file").problem()
    assert "start file" in _form(start="file", start_file=str(tmp_path / "gone.pt")).problem()
    old = tmp_path / "old.pt"
    old.write_bytes(b"x")  # the file is read by the core when training starts
    assert _form(start="file", start_file=str(old)).problem() is None

    builtin = train_request(_form(start="builtin", model="ulstm"), "I", "L")
    assert builtin["init"] == "builtin" and builtin["model_config"].name == "ulstm"  # the core picks the built-in
    fresh = train_request(_form(start="random"), "I", "L")
    assert fresh["init"] == "random" and fresh["model_config"].name == "unet"
    from_file = train_request(_form(start="file", start_file=str(old)), "I", "L")
    assert from_file["init"] == str(old) and from_file["model_config"] is None  # the file decides

    assert [v for _, v in start_choices("unet", "3class")] == ["builtin", "current", "file", "random"]
    assert start_choices("ulstm", "3class")[0][0] == "built-in weights (builtin-ulstm)"
    assert "none for segnet" in start_choices("segnet", "3class")[0][0]


def test_segment_form(tmp_path):
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    form = SegmentForm(image=IMAGE, model_file=str(model))
    assert form.problem() is None and form.selected_frames() is None
    assert "no model yet" in replace(form, model_file=None).problem()
    assert "is gone" in replace(form, model_file=str(tmp_path / "gone.pt")).problem()
    assert replace(form, frames="current", current_frame=4).selected_frames() == [4]
    assert replace(form, frames="range", range_text="0, 2-3").selected_frames() == [0, 2, 3]
    assert "frame" in replace(form, frames="range", range_text="30-40").problem()
    assert "open an image" in replace(form, image=None).problem()


def test_export_and_annotate_forms():
    labels = LayerFacts(name="seg", shape=(20, 700, 1100))
    assert ExportForm(labels=labels, path="/tmp/a.tif").problem() is None
    assert "labels layer" in ExportForm(labels=None, path="/tmp/a.tif").problem()
    assert "file name" in ExportForm(labels=labels, path="").problem()
    form = AnnotateForm(image=IMAGE, annotations=ANNOTATIONS, segmentation=labels)
    assert form.create_problem() is None and form.copy_problem() is None
    assert "same layer" in replace(form, segmentation=ANNOTATIONS).copy_problem()
    assert "differ in shape" in replace(form, segmentation=replace(labels, shape=(3, 5, 5))).copy_problem()
    assert "segment the image" in replace(form, segmentation=None).copy_problem()
    assert "open an image" in replace(form, image=None).create_problem()


def test_combo_entries_come_from_the_core_vocabulary():
    from napari_cellseq.gui import _choices

    assert [v for _, v in _choices.target_choices()] == list(TARGETS)
    assert [v for _, v in _choices.sampling_choices()] == list(SAMPLINGS)
    assert [v for _, v in _choices.optimizer_choices()] == list(OPTIMIZERS)
    assert [v for _, v in _choices.loss_choices("weighted_ce")] == [None, *LOSSES]
    assert [v for _, v in _choices.output_choices()] == [None, *OUTPUTS]
    devices = [v for _, v in _choices.device_choices()]
    assert devices[0] == "auto" and "cpu" in devices and set(devices) <= set(DEVICES)
    labels = [label for label, _ in _choices.target_choices()]
    assert all(label not in TARGETS for label in labels)  # friendly labels, not the raw names


def test_default_model_file_is_persistent_and_never_replaces(tmp_path, monkeypatch):
    from napari_cellseq.gui._model_files import default_model_file, find_models, free_name, user_models_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    image = tmp_path / "exp1" / "hela.ome.tif"
    image.parent.mkdir()
    image.write_bytes(b"")
    beside = default_model_file("hela", str(image))
    assert beside == image.parent / "hela-cellseq.pt"  # beside the image file
    beside.write_bytes(b"model")
    assert default_model_file("hela", str(image)) == image.parent / "hela-cellseq-2.pt"
    assert free_name(image.parent / "hela-cellseq-2.pt") == image.parent / "hela-cellseq-2.pt"
    no_file = default_model_file("synthetic nuclei", None)
    assert no_file == user_models_dir() / "synthetic nuclei-cellseq.pt"
    assert str(user_models_dir()).startswith(str(tmp_path / "data"))  # the per-user data folder
    no_file.parent.mkdir(parents=True)
    no_file.write_bytes(b"model")
    assert set(find_models(str(image))) == {beside, no_file}
    assert find_models(None) == [no_file]
