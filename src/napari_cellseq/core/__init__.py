"""GUI-free compute core of napari-cellseq.

Nothing in this package imports napari, magicgui or Qt: a notebook or a cluster job uses it
directly, the napari widgets and the CLI are thin shells over it.
"""
