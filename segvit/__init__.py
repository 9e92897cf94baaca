"""SegViT: semantic segmentation with plain vision transformers.

The public API (docs/python-api.md): `segvit.load(source)` -> `SegvitModel`, and
`SegvitError`, the one exception for bad input. torch is imported on the first `load`, not
here, so `import segvit` stays quick.
"""

from typing import TYPE_CHECKING

from segvit.errors import SegvitError

if TYPE_CHECKING:
    from segvit.api import SegvitModel, load

__all__ = ["SegvitError", "SegvitModel", "load"]


def __getattr__(name: str):
    if name in ("load", "SegvitModel"):
        from segvit import api

        return getattr(api, name)
    raise AttributeError(f"module 'segvit' has no attribute {name!r}")
