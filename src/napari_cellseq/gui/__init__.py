"""napari shell of napari-cellseq: dock widgets, workers, layer adapters and manifest targets.

Nothing is re-exported here: importing :mod:`napari_cellseq.gui` must not import Qt. napari
imports the widget modules named in ``napari.yaml`` when a widget is opened.
"""
