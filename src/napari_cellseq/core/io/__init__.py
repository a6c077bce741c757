"""Files in and out, and the checks of user input. One module per question:

============================  ================================================================
where is ...                  module
============================  ================================================================
a TIFF read                   :mod:`.reading` (:func:`read_image`, :func:`read_labels`,
                              :func:`open_image` for movies larger than memory)
a file refused before reading :mod:`.tiff_file` (missing, folder, not a TIFF, damaged, codec)
a lazy (on-disk) array        :mod:`.views` (:class:`TiffFrames`, one channel of it, the
                              painted frames of a label stack, :func:`is_lazy`)
a lazy movie checked          :mod:`.checked` (:class:`ImageFrames`, :class:`LabelFrames`:
frame by frame                training on movies larger than memory)
a file written safely         :mod:`.atomic` (:func:`atomic_path`, :class:`OutputExistsError`,
                              the one "already exists; pass --overwrite" message)
a TIFF written                :mod:`.writers` (:func:`write_tiff_atomic`, label stacks frame by
                              frame, :func:`label_dtype`)
a Cell Tracking Challenge     :mod:`.ctc` (``mask000.tif``, ...)
mask written
a CTC sequence folder read    :mod:`.ctc_folder` (``01/t000.tif``, ground truth
                              ``01_GT/SEG/man_seg000.tif``)
an OME-Zarr image read,       :mod:`.ome_zarr` (level 0 lazily; ``labels/NAME`` frame by frame;
labels written into it        the ``ome-zarr`` extra)
an ImageJ / Fiji ROI set      :mod:`.imagej_rois` (one polygon per cell and frame, roifile)
written
which reader opens a path     :mod:`.sources` (:func:`open_movie`: TIFF, CTC folder or OME-Zarr)
``--frames 0-4,7`` parsed     :mod:`.frames` (:func:`parse_frames`)
an image / labels checked     :mod:`.checks` (:func:`check_image`, :func:`check_labels`,
                              :func:`select_channel`)
============================  ================================================================

Every name below can be imported from ``napari_cellseq.core.io`` directly.
"""

from .atomic import OVERWRITE_HOW, OutputExistsError, atomic_path, atomic_write_bytes, exists_message, refuse_existing
from .checks import check_finite, check_image, check_image_layout, check_labels, check_not_constant, select_channel
from .ctc import CtcMaskWriter, ctc_mask_name, ctc_mask_writer, write_ctc_masks
from .ctc_folder import CtcSequence, is_ctc_sequence, open_ctc_sequence, read_ctc_ground_truth
from .imagej_rois import ImagejRoiWriter, imagej_roi_writer, label_polygons, write_imagej_rois
from .ome_zarr import (OmeZarrImage, OmeZarrLabelsWriter, is_ome_zarr, ome_zarr_labels_writer, open_ome_zarr,
                       write_ome_zarr_labels)
from .sources import open_movie, open_training_labels, read_movie, read_training_labels
from .frames import parse_frames
from .reading import open_image, read_image, read_labels
from .views import ChannelView, LazyArray, PaintedFrames, TiffFrames, TiffPlane, is_lazy
from .checked import ImageFrames, LabelFrames
from .writers import LabelStackWriter, label_dtype, label_stack_writer, write_tiff_atomic

__all__ = [
    "OutputExistsError",
    "OVERWRITE_HOW",
    "exists_message",
    "refuse_existing",
    "read_image",
    "read_labels",
    "open_image",
    "LazyArray",
    "TiffFrames",
    "TiffPlane",
    "ChannelView",
    "PaintedFrames",
    "is_lazy",
    "ImageFrames",
    "LabelFrames",
    "atomic_path",
    "atomic_write_bytes",
    "label_dtype",
    "write_tiff_atomic",
    "label_stack_writer",
    "LabelStackWriter",
    "ctc_mask_writer",
    "CtcMaskWriter",
    "ctc_mask_name",
    "write_ctc_masks",
    "CtcSequence",
    "is_ctc_sequence",
    "open_ctc_sequence",
    "read_ctc_ground_truth",
    "ImagejRoiWriter",
    "imagej_roi_writer",
    "label_polygons",
    "write_imagej_rois",
    "OmeZarrImage",
    "OmeZarrLabelsWriter",
    "is_ome_zarr",
    "ome_zarr_labels_writer",
    "open_ome_zarr",
    "write_ome_zarr_labels",
    "open_movie",
    "read_movie",
    "read_training_labels",
    "open_training_labels",
    "parse_frames",
    "check_image",
    "check_image_layout",
    "check_finite",
    "check_not_constant",
    "check_labels",
    "select_channel",
]
