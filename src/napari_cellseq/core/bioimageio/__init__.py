"""BioImage Model Zoo (bioimage.io) packages: export a model (format 0.5) and read one back.

:func:`export_bioimageio` (module :mod:`.export`) needs the ``bioimageio`` extra; reading a
package napari-cellseq wrote (:func:`load_package`, module :mod:`.package`) needs only torch and
PyYAML. :mod:`.architecture` is the network source file shipped inside every package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_bioimageio", "validate_package", "load_package", "is_zoo_package"]


def __getattr__(name: str) -> Any:  # lazy: importing this package imports no bioimageio code
    if name in ("export_bioimageio", "validate_package"):
        from . import export

        return getattr(export, name)
    if name in ("load_package", "is_zoo_package"):
        from . import package

        return getattr(package, name)
    raise AttributeError(name)
