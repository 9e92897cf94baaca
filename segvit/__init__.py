"""SegViT: semantic segmentation with plain vision transformers."""
