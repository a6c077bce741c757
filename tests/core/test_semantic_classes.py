"""Semantic labels (target "classes"), class-balanced crop sampling, per-class scores."""

import numpy as np
import pytest

from napari_cellseq.core.config import DataConfig, ModelConfig, TrainConfig
from napari_cellseq.core.data.dataset import TrainingSet
from napari_cellseq.core.data.targets import class_targets
from napari_cellseq.core.errors import InputError
from napari_cellseq.core.metrics import evaluate_classes
from napari_cellseq.core.pipeline import segment
from napari_cellseq.core.postprocess import (
    class_map_from_probabilities,
    instances_per_class,
    labels_from_probabilities,
)
from napari_cellseq.core.training import fit

PLAIN = dict(augment_affine=False, augment_elastic=False)


def semantic(labels: np.ndarray, rare_cell: int = 2) -> np.ndarray:
    """Painted classes: 1 background, 2 cell, 3 one rare cell; a 6-pixel unpainted margin."""
    sem = np.where(labels > 0, 2, 1).astype(np.uint16)
    sem[labels == rare_cell] = 3
    sem[..., :6] = 0
    return sem


def test_class_targets_of_painted_values():
    lab = np.array([[0, 1, 2], [3, 1, 0]])
    np.testing.assert_array_equal(class_targets(lab, "classes"), [[0, 0, 1], [2, 0, 0]])


def test_training_set_semantic_target(small_movie):
    image, labels = small_movie
    sem = semantic(labels)
    data = TrainingSet(image, sem, DataConfig(target="classes", crop_size=48), weighting="separation")
    assert data.semantic and data.num_classes == 3
    valid = data._nearest[0][0, 1].numpy()
    classes = data._nearest[0][0, 0].numpy()
    assert np.all(valid[:, :6] == 0) and np.all(valid[:, 6:] == 1)  # unpainted = ignored in every frame
    np.testing.assert_array_equal(classes[:, 6:], sem[0][:, 6:] - 1)
    assert np.all(data._weights[0].numpy() == 1.0)  # no separation term without instances
    # the explicit background label (partial-annotation tool) means class 0
    painted = sem.copy()
    painted[painted == 1] = 65535
    data2 = TrainingSet(image, painted, DataConfig(target="classes", crop_size=48), background_label=65535)
    np.testing.assert_array_equal(data2._nearest[0].numpy(), data._nearest[0].numpy())


def test_semantic_target_errors(small_movie):
    image, labels = small_movie
    with pytest.raises(InputError, match="each label value is a class"):
        TrainingSet(image, labels + (labels > 0) * 100, DataConfig(target="classes"))
    with pytest.raises(InputError, match="at least two classes"):
        TrainingSet(image, np.ones_like(labels), DataConfig(target="classes"))
    with pytest.raises(InputError, match="one weight per class"):
        TrainingSet(image, semantic(labels), DataConfig(target="classes", class_weights=(1.0, 2.0)))
    with pytest.raises(InputError, match="unknown target"):
        TrainingSet(image, labels, DataConfig(target="4class"))
    with pytest.raises(InputError, match="unknown sampling"):
        TrainingSet(image, labels, DataConfig(sampling="random"))


def _centre_classes(data: TrainingSet, n: int, sequences: bool = False) -> np.ndarray:
    rng = np.random.default_rng(0)
    s = data.config.crop_size
    out = []
    for _ in range(n // 4):
        if sequences:
            b = data.sequence_batch(rng, 4, 3)
            annotated = b.valid[:, :, s // 2, s // 2] > 0
            out.extend(b.classes[:, :, s // 2, s // 2][annotated].tolist())
        else:
            b = data.frame_batch(rng, 4)
            keep = b.valid[:, s // 2, s // 2] > 0
            out.extend(b.classes[:, s // 2, s // 2][keep].tolist())
    return np.asarray(out)


@pytest.mark.parametrize("target", ["classes", "3class"])
def test_balanced_sampling_raises_rare_class_frequency(small_movie, target):
    image, labels = small_movie
    painted = semantic(labels) if target == "classes" else labels
    rare = 2  # the one small cell (classes) / the thin boundary class (3class)
    kw = dict(target=target, crop_size=32, **PLAIN)
    uniform = TrainingSet(image, painted, DataConfig(sampling="uniform", **kw), frames=[0, 2])
    balanced = TrainingSet(image, painted, DataConfig(sampling="balanced", **kw), frames=[0, 2])
    share = uniform.class_frequencies()[rare]
    assert share < 0.15  # the class is rare among the painted pixels
    u = np.mean(_centre_classes(uniform, 400) == rare)
    b = np.mean(_centre_classes(balanced, 400) == rare)
    assert b > 2.5 * u and abs(b - 1 / 3) < 0.1, (u, b)
    # every class about equally often at the centre
    counts = np.bincount(_centre_classes(balanced, 400), minlength=3) / 400
    assert np.all(np.abs(counts - 1 / 3) < 0.1), counts


def test_balanced_sampling_in_sequence_batches(small_movie):
    image, labels = small_movie
    kw = dict(target="classes", crop_size=32, **PLAIN)
    uniform = TrainingSet(image, semantic(labels), DataConfig(sampling="uniform", **kw), frames=[1, 4])
    balanced = TrainingSet(image, semantic(labels), DataConfig(sampling="balanced", **kw), frames=[1, 4])
    u = np.mean(_centre_classes(uniform, 200, sequences=True) == 2)
    b = np.mean(_centre_classes(balanced, 200, sequences=True) == 2)
    assert b > 2 * u, (u, b)


def test_class_map_and_instances_per_class():
    probs = np.zeros((3, 4, 6), dtype=np.float32)
    probs[0] = 0.6
    probs[1, :, :2] = 0.9  # class 1 on the left
    probs[2, :, 4:] = 0.9  # class 2 on the right
    probs[1, :, 2:4] = 0.25
    probs[2, :, 2:4] = 0.15  # middle: p(background) 0.6 -> foreground probability 0.4
    cm = class_map_from_probabilities(probs)
    assert cm[0].tolist() == [1, 1, 0, 0, 2, 2]
    # threshold on 1 - p(background): the middle joins the most probable foreground class
    assert class_map_from_probabilities(probs, threshold=0.35)[0].tolist() == [1, 1, 1, 1, 2, 2]
    inst = instances_per_class(np.array([[1, 1, 0, 2], [0, 0, 0, 2], [1, 0, 2, 2]]), min_size=1)
    assert inst.max() == 3 and len(np.unique(inst[inst > 0])) == 3
    assert inst[0, 0] == inst[0, 1] != inst[2, 0]  # two components of class 1
    np.testing.assert_array_equal(labels_from_probabilities(probs, "classes", min_size=1),
                                  instances_per_class(cm, min_size=1))


def test_evaluate_classes_hand_computed():
    gt = np.array([[1, 1, 2, 2], [1, 3, 3, 0]])  # 0 = not painted, not scored
    pred = np.array([[1, 2, 2, 2], [1, 3, 0, 3]])  # 0 = not segmented: wrong for every class
    s = evaluate_classes(gt, pred)
    # class 0: gt {0,1,4}, pred {0,4} -> 2*2/5; class 1: gt {2,3}, pred {1,2,3} -> 2*2/5
    # class 2: gt {5,6}, pred {5} -> 2*1/3
    assert s["dice_per_class"] == pytest.approx([0.8, 0.8, 2 / 3])
    assert s["mean_dice"] == pytest.approx((0.8 + 0.8 + 2 / 3) / 3)
    assert s["pixel_accuracy"] == pytest.approx(5 / 7) and s["n_pixels"] == 7 and s["num_classes"] == 3
    with pytest.raises(InputError, match="no painted pixel"):
        evaluate_classes(np.zeros((2, 2), int), np.ones((2, 2), int))


def test_train_and_segment_semantic_model(small_movie, tmp_path):
    image, labels = small_movie
    sem = semantic(labels)
    sem[sem == 3] = 4  # value 3 unused: 4 classes, one without pixels
    sem[3:] = 0
    ckpt = fit(image, sem, tmp_path / "m.pt", model_config=ModelConfig(base_channels=4),
               data_config=DataConfig(target="classes", crop_size=48, sampling="balanced"),
               train_config=TrainConfig(iterations=3, max_time=None, batch_size=2, loss="edge_weighted"))
    assert ckpt.model_config.num_classes == 4 and ckpt.data_config.target == "classes"
    assert ckpt.data_config.sampling == "balanced"
    classes = segment(image, ckpt, device="cpu")
    assert classes.shape == image.shape and classes.min() >= 1 and classes.max() <= 4
    inst = segment(image, ckpt, device="cpu", output="instances")
    assert inst.shape == image.shape
    cm = classes[0].astype(np.int64) - 1
    expected = instances_per_class(cm, min_size=ckpt.postprocess_config.min_size)
    np.testing.assert_array_equal(inst[0], expected)
    # continuing with a class the model does not have is refused
    more = sem.copy()
    more[0, 10:12, 10:12] = 5
    with pytest.raises(InputError, match="predicts 4"):
        fit(image, more, tmp_path / "n.pt", init=ckpt,
            train_config=TrainConfig(iterations=1, max_time=None, batch_size=1))
    with pytest.raises(InputError, match="unknown output"):
        segment(image, ckpt, output="both")
