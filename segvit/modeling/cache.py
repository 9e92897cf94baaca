"""Where downloaded weights live: the AugReg backbones and the authors' released models.

Kept apart from segvit.modeling.weights (which imports torch and timm) so that listing the
cache answers at once.
"""

from __future__ import annotations

import os
from pathlib import Path


def weights_dir() -> Path:
    """Where `--pretrained hub` looks before downloading: $SEGVIT_WEIGHTS or ~/.cache/segvit."""
    return Path(os.environ.get("SEGVIT_WEIGHTS", Path.home() / ".cache" / "segvit" / "weights"))


def release_dir() -> Path:
    """Where the authors' released checkpoints are cached: `release/` in the weights folder."""
    return weights_dir() / "release"
