"""A segmentor: a backbone and a head, with the prediction step kept apart."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import Tensor, nn

from segvit.modeling.output import SegOutput, semantic_inference
from segvit.modeling.specs import Normalization


@dataclass(frozen=True)
class ModelMeta:
    """What a checkpoint must carry to rebuild its model (and nothing about its data)."""

    variant: str  # a name from segvit.modeling.variants.VARIANTS
    num_classes: int
    crop: int  # training crop; position embeddings and QU queries are made for its grid
    tiny: bool  # width-192 ViT of the same depth

    def to_dict(self) -> dict[str, str | int | bool]:
        return asdict(self)


class Segmentor(nn.Module):
    """`forward` gives the head's SegOutput (training); `predict` gives per-class scores."""

    def __init__(self, *, backbone: nn.Module, head: nn.Module, meta: ModelMeta) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.meta = meta

    @property
    def norm(self) -> Normalization:
        """How its inputs are normalised: what its backbone's pretrained weights expect."""
        return self.backbone.spec.norm

    def forward(self, images: Tensor) -> SegOutput:
        return self.head(self.backbone(images))

    def predict(self, images: Tensor) -> Tensor:
        """Per-class scores (B, K, H, W) at the input size, before any softmax over K."""
        return semantic_inference(self(images), images.shape[-2:])
