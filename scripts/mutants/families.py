"""The third set of planted bugs: Shrunk (query down-sampling) on every ViT family (issue 24).

ShrunkViTBackbone re-computes timm's ViT, EVA and BEiT blocks with fewer queries, carrying
RoPE rows and relative bias along with the kept tokens. Unlike the first two sets, these
were written after the tests they are checked against (tests/modeling/test_shrunk_families.py
compares the taps with timm's own blocks on the full grid), as a check of how sharp those
tests are; a survivor here is a behaviour that reference does not reach.
Same shape as mutants.py: area, file, exact original text (once in its file), replacement,
one-line description.
"""

from __future__ import annotations

from mutants import Mutant

BACKBONE = "segvit/modeling/backbone.py"

MUTANTS: list[Mutant] = [
    Mutant("shrunk", BACKBONE,
           "    return x if gamma is None else gamma * x",
           "    return x",
           "EVA's and BEiT's layer scale (gamma_1, gamma_2) dropped in the re-computed blocks"),
    Mutant("shrunk", BACKBONE,
           "    if scale is not None:\n        return scale(x)",
           "    if scale is not None:\n        return x",
           "a ViT's layer scale (ls1, ls2: DeiT III) dropped in the QD block"),
    Mutant("shrunk", BACKBONE,
           "x = block(x, rope=rope if keep is None else rope[keep])",
           "x = block(x, rope=rope if keep is None else rope[: len(keep)])",
           "after QD, RoPE rows of the first h*w/4 places instead of the kept tokens' own"),
    Mutant("shrunk", BACKBONE,
           "torch.cat([torch.arange(prefix, device=keep.device), keep + prefix])",
           "torch.cat([torch.arange(prefix, device=keep.device), keep])",
           "relative bias indexed without skipping the class token"),
    Mutant("shrunk", BACKBONE,
           "            x = self._block(block, x_small, y_q, y_q, keep, keep, rope)",
           "            x = self._block(block, x_small, y_q, y_q, keep, None, rope)",
           "Q+K+V subsampling: keys take the full grid's position terms"),
    Mutant("shrunk", BACKBONE,
           "_layer_scale(block, 2, block.mlp(block.norm2(x)))",
           "_layer_scale(block, 2, block.mlp(block.norm2(residual)))",
           "the MLP reads the block's input instead of the attention's output"),
    Mutant("shrunk", BACKBONE,
           "            q, k = attn.q_norm(q), attn.k_norm(k)",
           "            k = attn.k_norm(k)",
           "the query norm (qk_norm) skipped"),
    Mutant("shrunk", BACKBONE,
           "            out = attn.norm(out)",
           "            out = out",
           "the attention's scale norm skipped"),
    Mutant("shrunk", BACKBONE,
           "            out = out * attn.gate(y_q).sigmoid()",
           "            out = out",
           "a gated attention's gate skipped"),
    Mutant("shrunk", BACKBONE,
           "            elif keep is not None and isinstance(block, BeitBlock):",
           "            elif False:",
           "after QD, BEiT blocks run as timm builds them (the full grid's bias)"),
    Mutant("shrunk", BACKBONE,
           "    rows = torch.arange(0, h, 2, device=device)",
           "    rows = torch.arange(1, h, 2, device=device)",
           "position terms of the odd rows while the tokens kept are the even ones"),
    Mutant("shrunk", BACKBONE,
           "        y_q = _subsample(y, grid, n)",
           "        y_q = _subsample(x, grid, n)",
           "QD's queries from the un-normed tokens"),
]  # fmt: skip
