"""TrainingRecord: the typed record of a run, stored in the model file's earlier dict layout."""

import pytest

from napari_cellseq.core.errors import ModelFileError
from napari_cellseq.core.training import ThresholdChoice, TrainingRecord, ValidationRecord

# as napari-cellseq wrote the "training" dict before the record was typed
OLD_ROC = {"iterations": 3, "seconds": 0.2, "frames": [0, 3], "value_range": [75.0, 515.0], "seed": 2,
           "optimizer": "adam", "lr": 0.003, "batch_size": 4, "device": "cpu", "loss": "weighted_ce",
           "validation_frames": [5], "roc_auc": 0.82, "threshold": 0.72}
OLD_CALIBRATION = {"iterations": 5, "seconds": 0.9, "frames": [0, 3, 5], "value_range": [75.0, 515.0],
                   "seed": 7, "optimizer": "adam", "lr": 0.003, "batch_size": 4, "device": "cpu",
                   "loss": "normalized_focal", "focal_gamma": 2.0,
                   "calibration": {"frames": [0, 3, 5], "threshold": None, "seg": 0.5, "ap50": 0.4,
                                   "argmax_seg": 0.45, "argmax_ap50": 0.3}}


@pytest.mark.parametrize("layout", [OLD_ROC, OLD_CALIBRATION, {}, {"iterations": 7},
                                    {**OLD_ROC, "precision": "bfloat16"}])
def test_earlier_layouts_read_and_write_back_unchanged(layout):
    record = TrainingRecord.from_dict(layout)
    assert record.to_dict() == {"iterations": 0, "seconds": 0.0, "frames": [], **layout}
    assert TrainingRecord.from_dict(record.to_dict()) == record


def test_typed_fields():
    roc = TrainingRecord.from_dict(OLD_ROC)
    assert roc.threshold == ThresholdChoice("roc", 0.72, (5,), roc_auc=0.82)
    assert roc.frames == (0, 3) and roc.value_range == (75.0, 515.0) and roc.validation_frames == (5,)
    cal = TrainingRecord.from_dict(OLD_CALIBRATION)
    assert cal.threshold.method == "calibration" and cal.threshold.threshold is None
    assert cal.threshold.seg == 0.5 and cal.focal_gamma == 2.0 and cal.edge_weight is None


def test_reads_as_the_dict_it_replaces():
    record = TrainingRecord.from_dict(OLD_CALIBRATION)
    assert record["iterations"] == 5 and record.get("roc_auc") is None and "calibration" in record
    assert dict(record) == record.to_dict()


def test_validation_scores_are_stored():
    record = TrainingRecord(iterations=2, validation_frames=(4,),
                            validation=ValidationRecord(2, (4,), {"seg": 0.8, "dice_per_class": [0.9, 0.7]}))
    again = TrainingRecord.from_dict(record.to_dict())
    assert again.validation == record.validation and again == record


@pytest.mark.parametrize("field, value, named", [
    ("iterations", "7", "training.iterations"),
    ("iterations", -1, "training.iterations"),
    ("iterations", True, "training.iterations"),
    ("seconds", float("nan"), "training.seconds"),
    ("frames", [0, "a"], "training.frames"),
    ("frames", 3, "training.frames"),
    ("value_range", [1.0], "training.value_range"),
    ("loss", 3, "training.loss"),
    ("precision", 16, "training.precision"),
    ("threshold", "0.5", "training.threshold"),
    ("roc_auc", [1], "training.roc_auc"),
    ("calibration", "yes", "training.calibration"),
    ("calibration", {"seg": "high"}, "training.calibration.seg"),
    ("calibration", {"colour": 1}, "training.calibration has unknown entries"),
    ("validation", {"scores": 3}, "training.validation.scores"),
    ("surprise", 1, "training has unknown entries ['surprise']"),
])
def test_wrong_fields_are_one_clear_error(field, value, named):
    with pytest.raises(ModelFileError, match=r"m\.pt: field " + named.replace(".", r"\.").replace("[", r"\[")
                       .replace("]", r"\]")):
        TrainingRecord.from_dict({**OLD_ROC, field: value}, where="m.pt")


def test_not_a_mapping():
    with pytest.raises(ModelFileError, match="field training is"):
        TrainingRecord.from_dict([1, 2], where="m.pt")


def test_origin_is_stored_and_checked():
    origin = {"script": "scripts/train_builtin.py", "seed": 0, "cores": 2, "styles": {"rods": 3},
              "steps": [1, 2.5], "ok": True, "none": None}
    record = TrainingRecord(iterations=3, origin=origin)
    stored = record.to_dict()
    assert stored["origin"] == origin
    assert TrainingRecord.from_dict(stored).origin == origin
    assert "origin" not in TrainingRecord(iterations=3).to_dict()
    for bad, named in (({"seed": float("nan")}, "training.origin.seed"), ({"f": object()}, "training.origin.f"),
                       ({1: "x"}, "training.origin"), ("text", "training.origin")):
        with pytest.raises(ModelFileError, match=r"field " + named.replace(".", r"\.")):
            TrainingRecord.from_dict({"iterations": 1, "origin": bad}, where="m.pt")
