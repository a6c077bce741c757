"""``python -m napari_cellseq ...``: the command line as a module, so that ``torchrun --nproc_per_node=N
-m napari_cellseq train ...`` trains one model on N processes (see core/distributed/ddp.py)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
