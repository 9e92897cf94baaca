"""The ATM cross-attention: its mask logits are QK^T * scale averaged over heads."""

import torch

from segvit.modeling.decoder import Attention, Decoder


def test_similarity_is_the_head_averaged_scaled_dot_product():
    torch.manual_seed(0)
    attn = Attention(dim=8, num_heads=2, attn_drop=0.0).eval()
    queries, memory = torch.randn(1, 3, 8), torch.randn(1, 5, 8)
    _, sim = attn(queries, memory, return_similarity=True)

    # By hand: per head h, S_h = q_h k_h^T / sqrt(d_head); the mask is the mean over heads.
    q = queries[0] @ attn.q.weight.T + attn.q.bias  # (3, 8)
    k = memory[0] @ attn.k.weight.T + attn.k.bias  # (5, 8)
    s0 = q[:, :4] @ k[:, :4].T / 2.0  # head 0, d_head = 4
    s1 = q[:, 4:] @ k[:, 4:].T / 2.0  # head 1
    torch.testing.assert_close(sim[0], (s0 + s1) / 2)


def test_fused_and_explicit_paths_agree():
    torch.manual_seed(0)
    attn = Attention(dim=16, num_heads=4).eval()
    queries, memory = torch.randn(2, 6, 16), torch.randn(2, 10, 16)
    fused, none = attn(queries, memory, return_similarity=False)
    explicit, sim = attn(queries, memory, return_similarity=True)
    assert none is None and sim.shape == (2, 6, 10)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)


def test_decoder_returns_similarity_only_where_asked():
    decoder = Decoder(dim=16, num_heads=4, num_layers=3).eval()
    q, m = torch.randn(1, 5, 16), torch.randn(1, 7, 16)
    assert [s is None for _, s in decoder(q, m, mask_layers="last")] == [True, True, False]
    assert [s is None for _, s in decoder(q, m, mask_layers="every")] == [False] * 3
    assert [s is None for _, s in decoder(q, m, mask_layers="none")] == [True] * 3
