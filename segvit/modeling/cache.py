"""Where downloaded weights live: the AugReg backbones, and released models placed by hand
(`segvit weights fetch` downloads into the Hugging Face cache instead).

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
    """Where a released checkpoint downloaded by hand goes: `release/` in the weights folder,
    looked at before the Hugging Face cache."""
    return weights_dir() / "release"
