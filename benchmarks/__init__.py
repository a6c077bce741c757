"""Benchmarks: scripts that print measured figures (HeLa accuracy, speed, memory, GUI stalls).

Run them as modules from the repository root, e.g. ``python -m benchmarks.hela_accuracy --help``.
The HeLa task they share (data, painted frames, training, timed segmentation, scores) is
:mod:`benchmarks._task`; the data is fetched by :mod:`benchmarks.hela_data`. Only
``cellpose_peer.py`` is a plain script: it runs with the Python of the Cellpose environment and
never imports napari_cellseq.
"""
