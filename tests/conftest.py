"""`build_peer`: the one place the tests turn a PEER_VARIANTS row into a Segmentor."""

from collections.abc import Callable

import pytest
import torch

from segvit.modeling.peers import PEER_VARIANTS
from segvit.modeling.segmentor import ModelMeta, Segmentor
from segvit.modeling.specs import tiny as tiny_spec


def _build_peer(
    name: str, *, num_classes: int, crop: int, tiny: bool = False, build: Callable | None = None
) -> Segmentor:
    """The row `name` (its spec; its builder unless `build` replaces it) as a Segmentor."""
    _, spec, row_build, _ = PEER_VARIANTS[name]
    build = build or row_build
    if tiny:
        spec = tiny_spec(spec)
    torch.manual_seed(0)
    backbone, head = build(spec, num_classes, crop)
    meta = ModelMeta(name, num_classes, crop, tiny)
    return Segmentor(backbone=backbone, head=head, meta=meta)


@pytest.fixture(scope="session")
def build_peer() -> Callable[..., Segmentor]:
    return _build_peer
