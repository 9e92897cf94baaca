"""Models: plain and Shrunk ViT backbones, the ATM / QU / SETR heads, the named variants."""
