"""Write a napari-cellseq model as a BioImage Model Zoo package (model format 0.5, a ``.zip``).

The package holds (see :func:`export_bioimageio`):

* ``pytorch_state_dict`` weights with their architecture source
  (:mod:`napari_cellseq.core.bioimageio.architecture`, by sha256, with the model config as
  ``kwargs``) and the same weights as TorchScript (``parent: pytorch_state_dict``), which
  deepImageJ / Fiji run without Python;
* one input ``raw`` (grey values, float32) and one output ``probabilities`` (softmax over the
  classes); ``y`` / ``x`` sizes are ``min + n * step`` with ``step`` the network's ``stride``;
* the normalisation as ``scale_range`` preprocessing (the model file's percentiles);
* test input / output tensors: frames of a real image (or of the built-in synthetic movie),
  the output computed by the model itself;
* a documentation file (what maps to the spec and what does not), authors, the networks'
  papers as citations, licence, tags, a cover image, and the napari-cellseq settings under
  ``config.napari_cellseq`` (read back by :func:`napari_cellseq.core.bioimageio.package.load_package`).

The U-LSTM (paper 000) is exported with a **fixed time window**: a ``time`` axis of ``window``
frames (default 5, the paper's unroll length), state starting at zero at the window's first
frame. Both weight formats share that layout (TorchScript is traced, and tracing fixes the
number of recurrent steps). napari-cellseq itself carries the state through the whole movie;
the documentation says so.

Needs the ``bioimageio`` extra (``pip install 'napari-cellseq[bioimageio]'``); everything is
done offline (no network access): the package is validated with ``bioimageio.spec`` and its
test tensors are reproduced with ``bioimageio.core``'s model test before it is moved into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import Checkpoint
from ..config import to_dict
from ..errors import CellseqError, InputError

logger = logging.getLogger(__name__)

__all__ = ["export_bioimageio", "require_bioimageio", "CITATIONS", "DEFAULT_WINDOW", "zoo_min_size"]

DEFAULT_WINDOW = 5  # U-LSTM time window: the paper's truncated-BPTT unroll length tau
_TEST_SIDE = 256  # largest side of the test tensors (rounded down to the stride)
_INSTALL_HINT = "pip install 'napari-cellseq[bioimageio]'"

# The papers behind each network, as zoo citations (DOI where there is one).
_ARBELLE = ("Arbelle A., Riklin Raviv T. Microscopy cell segmentation via convolutional LSTM networks. "
            "ISBI 2019", "10.1109/ISBI.2019.8759447", None)
_RONNEBERGER = ("Ronneberger O., Fischer P., Brox T. U-Net: convolutional networks for biomedical image "
                "segmentation. MICCAI 2015", "10.1007/978-3-319-24574-4_28", None)
_BARGE = ("Barge A. Nuclear segmentation with deep learning. CS230 report, Stanford University", None,
          "https://github.com/abarge/CS230")
CITATIONS: dict[str, tuple[tuple[str, str | None, str | None], ...]] = {
    "ulstm": (_ARBELLE,),
    "unet": (_RONNEBERGER, _BARGE),
    "segnet": (("Badrinarayanan V., Kendall A., Cipolla R. SegNet: a deep convolutional encoder-decoder "
                "architecture for image segmentation. IEEE TPAMI 2017", "10.1109/TPAMI.2016.2644615", None),
               _BARGE),
    "gruunet": (("Wollmann T., Gunkel M., Chung I., Erfle H., Rippe K., Rohr K. GRUU-Net: integrated "
                 "convolutional and gated recurrent neural network for cell segmentation. Medical Image "
                 "Analysis 2019", "10.1016/j.media.2019.04.011", None),),
    "fcn_googlenet": (("Szegedy C. et al. Going deeper with convolutions. CVPR 2015",
                       "10.1109/CVPR.2015.7298594", None),),
    "tiramisu": (("Jegou S., Drozdzal M., Vazquez D., Romero A., Bengio Y. The one hundred layers tiramisu: "
                  "fully convolutional DenseNets for semantic segmentation. CVPR Workshops 2017",
                  "10.1109/CVPRW.2017.156", None),),
    "deeplab": (("Chen L.-C., Zhu Y., Papandreou G., Schroff F., Adam H. Encoder-decoder with atrous "
                 "separable convolution for semantic image segmentation. ECCV 2018",
                 "10.1007/978-3-030-01234-2_49", None),),
}


def require_bioimageio() -> None:
    """Raise one clear :class:`CellseqError` when the ``bioimageio`` extra is not installed."""
    try:
        import bioimageio.core  # noqa: F401
        import bioimageio.spec  # noqa: F401
    except ImportError as err:
        raise CellseqError(
            f"exporting to the BioImage Model Zoo needs bioimageio.spec and bioimageio.core "
            f"({err.name} is missing): {_INSTALL_HINT}"
        ) from None


def _class_names(ckpt: Checkpoint) -> list[str]:
    k = ckpt.model_config.num_classes
    target = ckpt.data_config.target
    if target == "3class" and k == 3:
        return ["background", "interior", "boundary"]
    if target == "2class" and k == 2:
        return ["background", "cell"]
    return ["background"] + [f"class{i}" for i in range(1, k)]


def zoo_min_size(net: torch.nn.Module, temporal: bool, in_channels: int = 1) -> int:
    """The smallest frame side (a multiple of ``net.stride``) the network runs on, tried."""
    stride = int(getattr(net, "stride", 1))
    side = stride
    while side <= 64 * stride:
        shape = (1, 1, in_channels, side, side) if temporal else (1, in_channels, side, side)
        try:
            with torch.no_grad():
                net(torch.zeros(shape))
            return side
        except (RuntimeError, ValueError):
            side += stride
    raise CellseqError(f"the network does not run on frames up to {side - stride} pixels; cannot export it")


def _test_frames(image: Any, ckpt: Checkpoint, temporal: bool, window: int, stride: int,
                 frame: int) -> np.ndarray:
    """Test input ``(1, [T,] 1, H, W) float32``: a centred crop of real frames, sides multiples of stride."""
    from ..io import check_image_layout

    if image is None:
        from ..synthetic import synthetic_timelapse

        image, _ = synthetic_timelapse(n_frames=max(window, frame + 1) if temporal else frame + 1, seed=0)
    shape = tuple(int(s) for s in np.shape(image))
    check_image_layout(shape, getattr(image, "dtype", np.float32))
    n = 1 if len(shape) == 2 else shape[0]
    count = window if temporal else 1
    if not 0 <= frame or frame + count > n:
        need = f"frames {frame}..{frame + count - 1}" if count > 1 else f"frame {frame}"
        raise InputError(f"the sample image has {n} frame(s), the test input needs {need}: "
                         "choose another --frame or a longer image")
    h, w = shape[-2:]
    th, tw = (min(_TEST_SIDE, s) // stride * stride for s in (h, w))
    if th == 0 or tw == 0:
        raise InputError(f"the sample image ({h}x{w}) is smaller than the network's stride {stride}")
    y0, x0 = (h - th) // 2, (w - tw) // 2
    frames = [np.asarray(image if len(shape) == 2 else image[t])[y0:y0 + th, x0:x0 + tw]
              for t in range(frame, frame + count)]
    movie = np.stack(frames).astype(np.float32)[:, None]  # (T, 1, H, W)
    return movie[None] if temporal else movie  # (1, T, 1, H, W) or (1, 1, H, W)


def _scale_range(x: np.ndarray, percentiles: tuple[float, float], eps: float) -> np.ndarray:
    """The spec's ``scale_range`` over all axes but batch: ``(x - p_lo) / (p_hi - p_lo + eps)``."""
    out = np.empty_like(x, dtype=np.float32)
    for b in range(x.shape[0]):
        lo, hi = np.percentile(x[b], percentiles)
        out[b] = (x[b] - lo) / (hi - lo + eps)
    return out


def _plain(value: Any) -> bool:
    """A YAML scalar, or a list of them (what the package's ``config`` keeps of ``training``)."""
    if isinstance(value, (list, tuple)):
        return all(_plain(v) and not isinstance(v, (list, tuple)) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def _trace(net: torch.nn.Module, example: torch.Tensor, path: Path) -> str:
    """Save ``net`` traced on ``example`` as TorchScript at ``path``; return "" or why it failed."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # size checks become constants
            torch.jit.trace(net, example, check_trace=False).save(str(path))
    except Exception as err:  # noqa: BLE001 - some operators cannot be traced (SegNet's max_unpool2d sizes)
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        logger.warning("no TorchScript weights: tracing the network failed (%s)", reason)
        return reason
    return ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _torch_version() -> str:
    return str(torch.__version__).split("+")[0]


def _documentation(ckpt: Checkpoint, temporal: bool, window: int, stride: int, min_side: int,
                   class_names: list[str], sample: str, no_torchscript: str = "") -> str:
    name = ckpt.model_config.name
    lo, hi = ckpt.data_config.percentiles
    post = ckpt.postprocess_config
    threshold = ("each pixel takes its most probable class (argmax)" if post.threshold is None else
                 f"a pixel is foreground when 1 - p(background) >= {post.threshold:.4f} (chosen after "
                 "training by napari-cellseq)")
    layout = ("`(batch, time, channel, y, x)`" if temporal else "`(batch, channel, y, x)`")
    time_text = (
        f"\n## Time axis (U-LSTM)\n\nThe network is recurrent (a C-LSTM at every encoder level). The package "
        f"takes a **fixed window of {window} frames** on its `time` axis; the recurrent state starts at zero "
        f"at the window's first frame and runs through the window in order, so the last frames of a window "
        f"see the most context. Both weight formats share this layout (the TorchScript weights are traced "
        f"with {window} recurrent steps). To segment a longer movie with the zoo's tools, cut it into "
        f"consecutive windows of {window} frames. napari-cellseq itself (`segment --model` on this zip) "
        f"carries the state through the whole movie, warming it up on frames before the first requested "
        f"one; its results on the first frames of a window can therefore differ from the zoo's.\n"
        if temporal else "")
    torchscript = ("* `torchscript`: traced from the same network; runs with PyTorch alone (deepImageJ, Fiji)."
                   if not no_torchscript else
                   f"* no `torchscript` weights: tracing this network failed ({no_torchscript}); use the "
                   "`pytorch_state_dict` weights.")
    training = ckpt.training
    found = {k: v for k, v in training.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
             and any(m in k.lower() for m in ("seg", "ap50", "auc", "dice", "accuracy"))}
    scores = ("Scores recorded during training: " + ", ".join(f"{k} {v:.4g}" for k, v in found.items())
              + ". ") if found else ""
    trained = ", ".join(f"{k} {training[k]}" for k in ("iterations", "seconds", "frames") if k in training)
    return f"""# napari-cellseq {name} cell segmentation

A `{name}` network trained with [napari-cellseq](https://github.com/napari-cellseq) from a few painted
frames of a microscopy movie. It predicts, for each pixel, the probabilities of the classes
{", ".join(f"`{c}`" for c in class_names)} (training target `{ckpt.data_config.target}`).
{f"Training: {trained}." if trained else ""}

## Input and output

* input `raw`: {layout}, one grey-value channel (any intensity range; cast to float32);
  `y` and `x` at least {min_side} pixels and multiples of {stride} (the network's stride: it
  halves the resolution {int(np.log2(stride)) if stride > 1 else 0} times).
* output `probabilities`: the same layout with one channel per class (softmax over the classes,
  computed inside the network), same `y` / `x` size as the input.

## Normalisation

The preprocessing `scale_range` with percentiles {lo} and {hi} maps the grey values to about [0, 1]:
`(x - p{lo}) / (p{hi} - p{lo} + 1e-6)`, computed jointly over the axes of one sample
({"time, " if temporal else ""}channel, y, x). napari-cellseq computes the same percentiles once per
movie over all its frames (an even subsample of at most 4 million pixels), so that bleaching stays
visible to the network; for a single frame (or a window) of a movie whose brightness is steady the
two agree closely. napari-cellseq also pads a frame whose sides are not multiples of {stride}
with the value -1 (below the normalised background) and cuts large frames into overlapping tiles;
the zoo's tools pad and tile in their own way.

## Post-processing that is not in the specification

The package ends at the class probabilities. napari-cellseq turns them into cell (instance) labels:
{threshold}; then each connected component of the non-background, non-boundary classes is a cell,
grown back into its boundary pixels (target `3class`), and objects smaller than {post.min_size}
pixels are removed. The zoo specification has no step for this; run the package through
napari-cellseq (`napari-cellseq segment --model THIS.zip --image MOVIE.tif --out labels.tif`) to get
labels equal to those of the original model file.
{time_text}
## Validation

The test output in this package was computed by the network from the test input (frames of
{sample}); `bioimageio.core`'s model test reproduces it with both weight formats, and napari-cellseq
ran that test before writing the package. {scores}Measure accuracy on your own data with
`napari-cellseq evaluate --gt GT.tif --pred labels.tif` (SEG of the Cell Tracking Challenge and
AP at IoU 0.5).

## Weights

* `pytorch_state_dict`: needs napari-cellseq installed (the architecture source imports its model
  registry; see the environment file);
{torchscript}

## Licence

BSD-3-Clause, like napari-cellseq.
"""


def _cover(test_input: np.ndarray, test_output: np.ndarray, path: Path) -> None:
    """A PNG: the normalised test frame (left) and its foreground probability (right)."""
    import imageio.v3 as iio

    frame = test_input.reshape(-1, *test_input.shape[-2:])[-1]
    lo, hi = np.percentile(frame, (1, 99.8))
    grey = np.clip((frame - lo) / max(hi - lo, 1e-6), 0, 1)
    probs = test_output.reshape(-1, *test_output.shape[-3:])[-1]
    fg = 1.0 - probs[0]
    side = np.concatenate([grey, np.ones((grey.shape[0], 4)), fg], axis=1)
    iio.imwrite(path, (side * 255).round().astype(np.uint8))


def export_bioimageio(
    model: Checkpoint | str | os.PathLike,
    out: str | os.PathLike,
    image: Any = None,
    *,
    name: str | None = None,
    authors: Sequence[str] = ("napari-cellseq user",),
    window: int = DEFAULT_WINDOW,
    frame: int = 0,
    overwrite: bool = False,
    test: bool = True,
) -> Path:
    """Write ``model`` as a BioImage Model Zoo package ``out`` (a ``.zip``, format 0.5).

    Parameters
    ----------
    model : a checkpoint or a napari-cellseq model file.
    out : the ``.zip`` to write (atomically; an existing file only with ``overwrite``).
    image : ``(Y, X)`` or ``(T, Y, X)`` sample image whose frames (a centred crop of at most
        256x256) become the test input; None: the built-in synthetic movie.
    name : the package's name (default ``napari-cellseq <network>``).
    authors : author names.
    window : frames of the U-LSTM's time axis (ignored for frame networks).
    frame : first frame of ``image`` used as test input.
    overwrite : replace ``out`` if it exists.
    test : run ``bioimageio.core``'s model test (both weight formats reproduce the test output)
        before the package is moved into place; a failure raises and leaves no file.

    Returns the path written. Raises :class:`CellseqError` for a missing ``bioimageio`` extra,
    a package that fails validation or its test, and :class:`InputError` for bad arguments.
    """
    require_bioimageio()
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as spec

    from ..io import atomic_path
    from ..pipeline import load_model
    from . import architecture

    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise InputError(f"{out}: a BioImage Model Zoo package is a .zip file; name it e.g. {out.with_suffix('.zip').name}")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise InputError(f"the time window must be a whole number of frames >= 1, got {window!r}")
    authors = [a for a in (str(a).strip() for a in authors) if a]
    if not authors:
        raise InputError("give at least one author name for the package")
    ckpt = load_model(model)
    if ckpt.model_config.in_channels != 1:
        raise InputError(f"only grey-scale models (1 input channel) can be exported, this one has "
                         f"{ckpt.model_config.in_channels}")
    config_dict = to_dict(ckpt.model_config)
    zoo_net = architecture.CellseqZooModel(config_dict)
    zoo_net.net.load_state_dict(ckpt.state_dict)
    zoo_net.eval()
    temporal, stride = zoo_net.temporal, zoo_net.stride
    window = int(window) if temporal else 1
    min_side = zoo_min_size(zoo_net, temporal)
    class_names = _class_names(ckpt)
    x_raw = _test_frames(image, ckpt, temporal, window, stride, int(frame))
    if min(x_raw.shape[-2:]) < min_side:
        raise InputError(f"the sample image is smaller than the {min_side} pixels the network needs")
    eps = 1e-6
    percentiles = tuple(float(p) for p in ckpt.data_config.percentiles)
    with torch.no_grad():
        y = zoo_net(torch.from_numpy(_scale_range(x_raw, percentiles, eps))).numpy()

    with tempfile.TemporaryDirectory(prefix="cellseq-zoo-") as tmp_name:
        tmp = Path(tmp_name)
        np.save(tmp / "test_input.npy", x_raw)
        np.save(tmp / "test_output.npy", y)
        import tifffile

        tifffile.imwrite(tmp / "sample_input.tif", x_raw)
        tifffile.imwrite(tmp / "sample_output.tif", y)
        arch_path = tmp / "cellseq_architecture.py"
        shutil.copyfile(architecture.__file__, arch_path)
        weights_path = tmp / "weights.pt"
        torch.save({k: v.detach().cpu().contiguous() for k, v in zoo_net.state_dict().items()}, weights_path)
        ts_path = tmp / "weights_torchscript.pt"
        no_torchscript = _trace(zoo_net, torch.from_numpy(_scale_range(x_raw, percentiles, eps)), ts_path)
        doc_path = tmp / "README.md"
        doc_path.write_text(_documentation(ckpt, temporal, window, stride, min_side, class_names,
                                           "the built-in synthetic movie" if image is None else "the sample image",
                                           no_torchscript), encoding="utf-8")
        cover_path = tmp / "cover.png"
        _cover(x_raw, y, cover_path)
        env_path = tmp / "environment.yaml"
        from ... import __version__

        env_path.write_text(
            "name: napari-cellseq\nchannels:\n  - conda-forge\n  - nodefaults\ndependencies:\n"
            f"  - python>=3.10\n  - pytorch>={_torch_version()}\n  - pip\n  - pip:\n"
            f"      - napari-cellseq=={__version__}\n", encoding="utf-8")

        space = spec.ParameterizedSize(min=min_side, step=stride)
        in_axes: list[Any] = [spec.BatchAxis()]
        out_axes: list[Any] = [spec.BatchAxis()]
        if temporal:
            in_axes.append(spec.TimeInputAxis(size=window))
            out_axes.append(spec.TimeOutputAxis(size=spec.SizeReference(tensor_id=spec.TensorId("raw"),
                                                                        axis_id=spec.AxisId("time"))))
        in_axes += [spec.ChannelAxis(channel_names=[spec.Identifier("grey")]),
                    spec.SpaceInputAxis(id=spec.AxisId("y"), size=space),
                    spec.SpaceInputAxis(id=spec.AxisId("x"), size=space)]
        out_axes += [spec.ChannelAxis(channel_names=[spec.Identifier(c) for c in class_names])]
        out_axes += [spec.SpaceOutputAxis(id=spec.AxisId(a), size=spec.SizeReference(
            tensor_id=spec.TensorId("raw"), axis_id=spec.AxisId(a))) for a in ("y", "x")]
        norm_axes = [spec.AxisId(a) for a in (("time",) if temporal else ()) + ("channel", "y", "x")]
        inputs = [spec.InputTensorDescr(
            id=spec.TensorId("raw"), axes=in_axes,
            description="grey values of the microscopy frames" + (f" ({window} consecutive frames)" if temporal else ""),
            test_tensor=spec.FileDescr(source=tmp / "test_input.npy"),
            sample_tensor=spec.FileDescr(source=tmp / "sample_input.tif"),
            data=spec.IntervalOrRatioDataDescr(type="float32"),
            preprocessing=[spec.ScaleRangeDescr(kwargs=spec.ScaleRangeKwargs(
                axes=norm_axes, min_percentile=percentiles[0], max_percentile=percentiles[1], eps=eps))],
        )]
        outputs = [spec.OutputTensorDescr(
            id=spec.TensorId("probabilities"), axes=out_axes,
            description="class probabilities: " + ", ".join(class_names),
            test_tensor=spec.FileDescr(source=tmp / "test_output.npy"),
            sample_tensor=spec.FileDescr(source=tmp / "sample_output.tif"),
            data=spec.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        )]
        pytorch_version = spec.Version(_torch_version())
        weights = spec.WeightsDescr(
            pytorch_state_dict=spec.PytorchStateDictWeightsDescr(
                source=weights_path, sha256=spec.Sha256(_sha256(weights_path)),
                architecture=spec.ArchitectureFromFileDescr(
                    source=arch_path, sha256=spec.Sha256(_sha256(arch_path)),
                    callable=spec.Identifier("CellseqZooModel"), kwargs={"model_config": config_dict}),
                pytorch_version=pytorch_version,
                dependencies=spec.FileDescr(source=env_path),
            ),
            torchscript=None if no_torchscript else spec.TorchscriptWeightsDescr(
                source=ts_path, sha256=spec.Sha256(_sha256(ts_path)), pytorch_version=pytorch_version,
                parent="pytorch_state_dict"),
        )
        net_name = ckpt.model_config.name
        cite = [spec.CiteEntry(text=text, doi=spec.Doi(doi) if doi else None,
                               url=spec.HttpUrl(url) if url else None)
                for text, doi, url in CITATIONS.get(net_name, ())]
        tags = ["napari-cellseq", "pytorch", "2d", "cell-segmentation", "instance-segmentation",
                "fluorescence-light-microscopy", net_name.replace("_", "-")]
        if temporal:
            tags += ["time-lapse", "convolutional-lstm"]
        descr = spec.ModelDescr(
            name=name or f"napari-cellseq {net_name}",
            description=(f"Cell segmentation of microscopy frames with a {net_name} network trained in "
                         f"napari-cellseq from a few painted frames; outputs {', '.join(class_names)} "
                         "probabilities."),
            authors=[spec.Author(name=a) for a in authors],
            cite=cite,
            license=spec.LicenseId("BSD-3-Clause"),
            documentation=spec.FileDescr(source=doc_path),
            covers=[spec.FileDescr(source=cover_path)],
            tags=tags,
            inputs=inputs,
            outputs=outputs,
            weights=weights,
            config={"napari_cellseq": {
                "format": 1,
                "model_config": config_dict,
                "data_config": to_dict(ckpt.data_config),
                "postprocess_config": to_dict(ckpt.postprocess_config),
                "training": {k: v for k, v in ckpt.training.items() if _plain(v)},
                "time_window": window if temporal else None,
            }},
        )
        with atomic_path(out, overwrite=overwrite) as tmp_zip:
            tmp_zip.unlink()  # save_bioimageio_package writes the file itself
            save_bioimageio_package(descr, output_path=tmp_zip)
            validate_package(tmp_zip, test=test)
    logger.info("wrote BioImage Model Zoo package %s", out)
    return out


def validate_package(path: str | os.PathLike, test: bool = True) -> None:
    """Validate a zoo package offline with ``bioimageio.spec`` and, with ``test``, reproduce its
    test outputs with ``bioimageio.core``'s model test; raise :class:`CellseqError` on failure."""
    require_bioimageio()
    from bioimageio.spec import ValidationContext, load_description

    with ValidationContext(perform_io_checks=True):
        descr = load_description(path)
    summary = descr.validation_summary
    if summary.status == "failed":
        raise CellseqError(f"the BioImage Model Zoo package {path} does not validate: {_summary_errors(summary)}")
    if test:
        from bioimageio.core import test_description

        summary = test_description(path)
        if summary.status == "failed":
            raise CellseqError(f"the BioImage Model Zoo package {path} fails its model test: {_summary_errors(summary)}")


def _summary_errors(summary: Any) -> str:
    parts = []
    for detail in getattr(summary, "details", []):
        for err in getattr(detail, "errors", []):
            parts.append(f"{'.'.join(str(p) for p in getattr(err, 'loc', ()))}: {getattr(err, 'msg', err)}")
    return "; ".join(parts[:5]) or str(summary.status)
