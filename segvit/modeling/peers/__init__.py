"""Other methods' heads (SETR-MLA, Segmenter, DPT, UperNet, MaskFormer) and SegViT variants,
built as segvit models so the paper's comparison rows can be counted and trained."""

from segvit.modeling.peers.variants import PEER_VARIANTS

__all__ = ["PEER_VARIANTS"]
