"""Model files are data from outside: every field is checked on load (one ModelFileError naming
the field), fuzzed with fields of the wrong type, missing and extra, through load_checkpoint and
through ``napari-cellseq segment`` (exit 2, one line)."""

import copy

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_cellseq.cli import main
from napari_cellseq.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from napari_cellseq.core.config import DataConfig, ModelConfig, PostprocessConfig
from napari_cellseq.core.errors import CellseqError, InputError, ModelFileError
from napari_cellseq.core.models import build_model
from napari_cellseq.core.pipeline import segment

CONFIG = ModelConfig(base_channels=4, depth=2)
IMAGE = np.random.default_rng(0).integers(0, 1000, (32, 32)).astype(np.uint16)


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    """The raw dict of a valid model file (with a calibrated threshold and a training record)."""
    path = tmp_path_factory.mktemp("model") / "m.pt"
    torch.manual_seed(0)
    save_checkpoint(Checkpoint(CONFIG, DataConfig(crop_size=48), build_model(CONFIG).state_dict(),
                               PostprocessConfig(min_size=10, threshold=0.4),
                               training={"iterations": 3, "seconds": 1.0, "frames": [0], "loss": "weighted_ce",
                                         "calibration": {"frames": [0], "threshold": 0.4, "seg": 0.5,
                                                         "ap50": 0.5, "argmax_seg": 0.4,
                                                         "argmax_ap50": 0.4}}), path)
    return torch.load(path, weights_only=True)


def _write(raw, path):
    torch.save(raw, path)
    return path


def _set(raw, keys, value):
    raw = copy.deepcopy(raw)
    target = raw
    for k in keys[:-1]:
        target = target[k]
    if value is _DELETE:
        target.pop(keys[-1], None)
    else:
        target[keys[-1]] = value
    return raw


_DELETE = object()
_FIRST_WEIGHT = ("state_dict", "__first__")

CASES = [  # (where, value, the field the message names)
    (("model_config",), [1, 2], "field model_config is"),
    (("model_config",), "unet", "field model_config is"),
    (("postprocess_config", "threshold"), "0.5", "field postprocess_config.threshold is '0.5'"),
    (("postprocess_config", "threshold"), 7.0, "field postprocess_config.threshold is 7.0"),
    (("postprocess_config", "min_size"), -3, "field postprocess_config.min_size is -3"),
    (("postprocess_config", "min_size"), 2.5, "field postprocess_config.min_size is 2.5"),
    (("data_config", "percentiles"), [1.0], "field data_config.percentiles is"),
    (("data_config", "percentiles"), ["a", "b"], "field data_config.percentiles is"),
    (("data_config", "percentiles"), [99.0, 1.0], "field data_config.percentiles is"),
    (("data_config", "percentiles"), 5, "field data_config.percentiles is 5"),
    (("data_config", "target"), 3, "field data_config.target is 3"),
    (("data_config", "target"), "blobs", "field data_config.target is 'blobs'"),
    (("data_config", "crop_size"), None, "field data_config.crop_size is None"),
    (("model_config", "base_channels"), "4", "field model_config.base_channels is '4'"),
    (("model_config", "num_classes"), True, "field model_config.num_classes is True"),
    (("model_config", "name"), "resnet", "field model_config.name is 'resnet'"),
    (("model_config", "name"), None, "field model_config.name is None"),
    (("model_config", "options"), "x", "field model_config.options is 'x'"),
    (("model_config", "colour"), "red", "model_config has unknown entries ['colour']"),
    (("data_config",), _DELETE, "lacks the field(s) ['data_config']"),
    (("state_dict",), _DELETE, "lacks the field(s) ['state_dict']"),
    (("surprise",), 1, "unknown fields ['surprise']"),
    (("state_dict",), [1, 2], "field state_dict is"),
    (_FIRST_WEIGHT, [0.0, 1.0], "field state_dict['"),
    (_FIRST_WEIGHT, float("nan"), "field state_dict['"),
    (("training",), "long", "field training is 'long'"),
    (("training", "iterations"), "3", "field training.iterations is '3'"),
    (("training", "calibration", "seg"), "high", "field training.calibration.seg is 'high'"),
    (("versions",), 3, "field versions is 3"),
    (("format_version",), "1", "field format_version is '1'"),
]


def _names(named, message):
    """The message names the field (as the checkpoint says it, or as the config's own check does)."""
    if named in message:
        return True
    field = named.partition(" is")[0].removeprefix("field ")
    return all(part in message for part in field.split("."))


def _mutate(payload, keys, value):
    if keys == _FIRST_WEIGHT:
        first = next(iter(payload["state_dict"]))
        if isinstance(value, float):  # a NaN weight
            weight = payload["state_dict"][first].clone()
            weight.view(-1)[0] = value
            value = weight
        keys = ("state_dict", first)
    return _set(payload, keys, value)


@pytest.mark.parametrize("keys, value, named", CASES, ids=[f"{'.'.join(map(str, k))}={v!r}"[:50] for k, v, _ in CASES])
def test_each_wrong_field_is_one_clear_error(payload, tmp_path, keys, value, named):
    path = _write(_mutate(payload, keys, value), tmp_path / "m.pt")
    with pytest.raises(ModelFileError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert _names(named, message) and str(path) in message and "\n" not in message
    assert isinstance(info.value, InputError)


@pytest.mark.parametrize("keys, value, named", CASES[::3], ids=[f"{'.'.join(map(str, k))}"[:40] for k, _, _ in CASES[::3]])
def test_segment_cli_exits_2_with_one_line(payload, tmp_path, capsys, keys, value, named):
    model = _write(_mutate(payload, keys, value), tmp_path / "m.pt")
    tifffile.imwrite(tmp_path / "img.tif", IMAGE)
    out = tmp_path / "labels.tif"
    assert main(["segment", "--model", str(model), "--image", str(tmp_path / "img.tif"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and _names(named, err) and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.tif", "m.pt"]  # nothing left behind


def _paths(tree, prefix=()):
    """Every key path of the payload's settings (configs, training record, versions)."""
    for key, value in tree.items():
        if prefix == () and key == "state_dict":
            continue
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from _paths(value, prefix + (key,))


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.lists(st.one_of(st.integers(-5, 200), st.floats(), st.text(max_size=3)), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2), st.just(_DELETE),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_model_files_load_or_fail_clearly(payload, tmp_path, data):
    """Any field of a valid file replaced by any value, deleted, or an extra field added: loading
    either refuses with one ModelFileError, or the model loads and segments without error."""
    paths = sorted(_paths(payload), key=str)
    keys = data.draw(st.sampled_from(paths), label="field")
    if data.draw(st.booleans(), label="extra field"):
        keys = keys[:-1] + (data.draw(st.text(min_size=1, max_size=6), label="name"),) \
            if isinstance(_get(payload, keys[:-1]), dict) else keys
    value = data.draw(_VALUES, label="value")
    path = _write(_set(payload, keys, value), tmp_path / "fuzz.pt")
    try:
        ckpt = load_checkpoint(path)
    except ModelFileError as err:
        assert "\n" not in str(err)
        return
    try:  # a file that loads is usable
        labels = segment(IMAGE, ckpt, device="cpu")
    except CellseqError as err:  # a clear error about the image is fine, never a crash
        assert not isinstance(err, ModelFileError), err
        return
    assert labels.shape == IMAGE.shape


def _get(tree, keys):
    for k in keys:
        tree = tree[k]
    return tree
