"""Import torchvision's pure-Python parts even where its compiled operators cannot load.

With a CPU-only torch, the ``_C`` extension of PyPI's (CUDA-linked) torchvision wheel fails to load
and ``import torchvision`` dies registering fake kernels for ``torchvision::nms``/``qnms``, which
only the extension defines. We use no compiled operator, so we then declare the two schemas
ourselves and import again (``torchvision.ops.nms`` would still fail, with "no kernel").
"""

from __future__ import annotations

import sys
from types import ModuleType

_library = None  # keeps the schema definitions alive for the life of the process


def import_torchvision() -> ModuleType:
    """Return the ``torchvision`` module, declaring missing operator schemas if needed."""
    global _library
    try:
        import torchvision
    except RuntimeError as err:
        if "torchvision::" not in str(err) or _library is not None:
            raise
        import torch

        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        _library = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            _library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import torchvision
    return torchvision
