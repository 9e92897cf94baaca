"""Segmentation heads: the ATM head (cascade or single input), the QU head, SETR-naive.

Every head takes the backbone's tapped feature maps [(B, C, h, w)] shallowest first and
returns a SegOutput at feature resolution. Each head initialises its own parameters as the
release does (`_init_weights`, run at construction; the decoders initialise themselves).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segvit.modeling.decoder import Decoder, MaskLayers, init_release
from segvit.modeling.output import MaskPrediction, SegOutput

# References: SegViT (Zhang et al., NeurIPS 2022) Sec. 3.2 (ATM, cascade) and 3.3 (QU);
# MaskFormer (Cheng et al. 2021) for the extra "no object" class; SETR (Zheng et al. 2021)
# for the naive head. Initialisation: the SegViT release's `init_weights` (ATM, TPN heads),
# mmseg 0.24 BaseDecodeHead (classifier) and mmcv ConvModule (kaiming fan-out, BN 1 / 0).


def _projection(in_dim: int, dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, dim), nn.LayerNorm(dim))


def _tokens(feature: Tensor) -> Tensor:
    return feature.flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, h*w, C)


class ATMHead(nn.Module):
    """Class queries read the feature maps, deepest first; attention similarities are masks.

    Arguments:
        in_dim: channels of the input feature maps.
        num_inputs: how many feature maps (stages); each has its own decoder.
        num_classes: K; one learnable query per class and K+1 class logits ("no object").
        dim: decoder width D.
        num_heads: decoder attention heads.
        num_layers: decoder layers per stage.
        project: per-stage Linear(in_dim -> D) + LayerNorm on the tokens (False: in_dim == D).
        mask_layers: "last": each stage's last layer gives a mask (the cascade head);
            "every": every layer gives one (the single-input heads).
        cumulative: a mask is the sum of its own map and all earlier ones (the cascade);
            False keeps them apart (the single-input heads and the ATM inside QU, as the
            release's ATMSingleHead does).
    """

    def __init__(
        self,
        *,
        in_dim: int,
        num_inputs: int,
        num_classes: int,
        dim: int,
        num_heads: int,
        num_layers: int = 3,
        project: bool = True,
        mask_layers: MaskLayers = "last",
        cumulative: bool = True,
    ) -> None:
        super().__init__()
        if not project and in_dim != dim:
            raise ValueError(f"without projection in_dim ({in_dim}) must equal dim ({dim})")
        self.mask_layers = mask_layers
        self.cumulative = cumulative
        self.queries = nn.Embedding(num_classes, dim)
        self.input_proj = nn.ModuleList(
            _projection(in_dim, dim) if project else nn.Identity() for _ in range(num_inputs)
        )
        self.decoders = nn.ModuleList(
            Decoder(dim=dim, num_heads=num_heads, num_layers=num_layers) for _ in range(num_inputs)
        )
        self.class_embed = nn.Linear(dim, num_classes + 1)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        nn.init.normal_(self.queries.weight)  # N(0, 1): nn.Embedding's default, kept
        init_release([self.input_proj, self.class_embed])  # the decoders init themselves

    def forward(self, features: list[Tensor]) -> SegOutput:
        B = features[0].shape[0]
        queries = self.queries.weight.expand(B, -1, -1)  # (B, K, D)
        stage_queries, stage_maps = [], []
        # The cascade: deepest map first, each stage's output queries feed the next stage.
        for feature, proj, decoder in zip(
            reversed(features), self.input_proj, self.decoders, strict=True
        ):
            grid = feature.shape[-2:]
            layers = decoder(queries, proj(_tokens(feature)), mask_layers=self.mask_layers)
            queries = layers[-1][0]
            for layer_queries, similarity in layers:
                if similarity is not None:
                    stage_queries.append(layer_queries)
                    stage_maps.append(similarity.unflatten(2, grid))  # (B, K, h, w)
        return self._predictions(stage_queries, stage_maps)

    def _predictions(self, stage_queries: list[Tensor], stage_maps: list[Tensor]) -> SegOutput:
        size = stage_maps[-1].shape[-2:]
        masks, total = [], None
        for mask in stage_maps:
            if mask.shape[-2:] != size:
                mask = F.interpolate(mask, size=size, mode="bilinear", align_corners=False)
            if self.cumulative:
                total = mask if total is None else total + mask
                mask = total
            masks.append(mask)
        pairs = zip(stage_queries, masks, strict=True)
        preds = [MaskPrediction(self.class_embed(q), m) for q, m in pairs]
        return SegOutput(preds[-1].class_logits, preds[-1].mask_logits, aux=preds[:-1])


class QUHead(nn.Module):
    """Query up-sampling: per-position queries at 1/16 read the 1/16 and 1/32 taps in turn,
    then serve as the feature map of a single-input ATM head whose every layer gives a mask.

    Arguments:
        in_dim: backbone width C.
        num_inputs: taps read in order (1/16 first; not reversed).
        num_classes, dim, num_heads, num_layers: as for ATMHead.
        grid: the 1/16 token grid of the crop, (crop/16, crop/16): one query per position.
    """

    def __init__(
        self,
        *,
        in_dim: int,
        num_inputs: int,
        num_classes: int,
        dim: int,
        num_heads: int,
        grid: tuple[int, int],
        num_layers: int = 3,
    ) -> None:
        super().__init__()
        self.grid = grid
        self.queries = nn.Embedding(grid[0] * grid[1], dim)
        self.input_proj = nn.ModuleList(_projection(in_dim, dim) for _ in range(num_inputs))
        self.decoders = nn.ModuleList(  # standard decoders: both attentions torch's packed MHA
            Decoder(dim=dim, num_heads=num_heads, num_layers=num_layers, packed_cross_attn=True)
            for _ in range(num_inputs)
        )
        self.atm = ATMHead(
            in_dim=dim,
            num_inputs=1,
            num_classes=num_classes,
            dim=dim,
            num_heads=num_heads,
            num_layers=num_layers,
            project=False,
            mask_layers="every",
            cumulative=False,
        )
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        nn.init.normal_(self.queries.weight)  # N(0, 1): nn.Embedding's default, kept
        init_release([self.input_proj])  # the decoders and the ATM init themselves

    def forward(self, features: list[Tensor]) -> SegOutput:
        B = features[0].shape[0]
        queries = self.queries.weight.expand(B, -1, -1)  # (B, h*w, D) at 1/16
        for feature, proj, decoder in zip(features, self.input_proj, self.decoders, strict=True):
            queries = decoder(queries, proj(_tokens(feature)))[-1][0]
        feature_map = queries.transpose(1, 2).reshape(B, -1, *self.grid)  # (B, D, h, w)
        return self.atm([feature_map])


class SETRNaiveHead(nn.Module):
    """SETR-naive: 1x1 conv -> BN -> ReLU -> 1x1 conv on the last tap; per-pixel logits.

    Arguments:
        in_dim: backbone width C.
        num_classes: K.
        channels: hidden width (256 in SETR).
    """

    def __init__(self, *, in_dim: int, num_classes: int, channels: int = 256) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_dim, channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(channels, num_classes, kernel_size=1)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        # mmcv's ConvModule (conv + BN + ReLU): kaiming normal over fan-out, BN 1 / 0;
        # mmseg's BaseDecodeHead: the classifier normal std 0.01, bias 0.
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: list[Tensor]) -> SegOutput:
        x = F.relu(self.bn(self.conv(features[-1])))  # (B, 256, h, w)
        return SegOutput(class_logits=None, mask_logits=self.classifier(self.dropout(x)))
