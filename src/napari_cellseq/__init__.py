"""napari-cellseq: teach U-LSTM / U-Net cell segmentation from a few painted frames."""

__version__ = "0.1.0"
