r"""The pre-LN transformer block (week 11).

.. math:: h = x + \operatorname{MHA}(\operatorname{LN}_1(x)), \qquad
          y = h + \operatorname{FFN}(\operatorname{LN}_2(h))

Axis letters: T positions, D model width, H heads, F feed-forward hidden width;
any leading axes (batch ``B``) are carried through unchanged as ``...``.

The two residual sublayers are the verified equations (``block.attention_sublayer``,
``block.ffn_sublayer``); :func:`transformer_block` is the second applied to the
first, composed from :func:`model.normalization.layer_norm`,
:func:`model.multihead.multi_head_attention`, :func:`model.feedforward.feed_forward`
and :func:`model.residual.residual`.
"""

from __future__ import annotations

from flax import nnx

from model.equation import implements
from model.feedforward import FFN_BY_ACTIVATION, FeedForward
from model.multihead import MultiHeadAttention, multi_head_attention
from model.normalization import LayerNorm, layer_norm
from model.residual import residual
from model.validate import check_positive_int, check_rank

__all__ = ["TransformerBlock", "attention_sublayer", "ffn_sublayer", "transformer_block"]


@implements("block.attention_sublayer")
def attention_sublayer(x, gamma_1, beta_1, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, *,
                       n_heads: int, eps, mask=None):
    r"""The pre-LN attention sublayer, :math:`h = x + \operatorname{MHA}(\operatorname{LN}_1(x), M)`.

    Args:
        x: the residual stream ``[..., T, D]``.
        gamma_1, beta_1: gain and bias of the first LayerNorm, ``[D]`` each.
        w_q, w_k, w_v, w_o: attention projections ``[D, D]``.
        b_q, b_k, b_v, b_o: their biases ``[D]``.
        n_heads: H, which must divide D.
        eps: the LayerNorm epsilon.
        mask: optional boolean ``[..., T, T]``; ``True`` attends (e.g. :func:`model.attention.causal_mask`).

    Returns:
        ``[..., T, D]``.

    Derivation: ``block.attention_sublayer``.

    References: Xiong et al., "On Layer Normalization in the Transformer Architecture", 2020;
    Radford et al., GPT-2, 2019, section 2.3.
    """
    check_rank("x", x, min_rank=2, axes="[..., T, D]")

    def attend(u):
        z = layer_norm(u, gamma_1, beta_1, eps=eps)
        return multi_head_attention(z, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, n_heads=n_heads, mask=mask)

    return residual(x, attend)


@implements("block.ffn_sublayer")
def ffn_sublayer(x, gamma_2, beta_2, w_1, b_1, w_2, b_2, *, eps, activation: str = "relu"):
    r"""The pre-LN feed-forward sublayer, :math:`y = x + \operatorname{FFN}(\operatorname{LN}_2(x))`.

    Applied to the output of :func:`attention_sublayer` it completes the block.  It is
    position-wise: output row ``t`` depends on input row ``t`` only.

    Args:
        x: the residual stream ``[..., T, D]``.
        gamma_2, beta_2: gain and bias of the second LayerNorm, ``[D]`` each.
        w_1: ``[D, F]``; b_1: ``[F]``; w_2: ``[F, D]``; b_2: ``[D]``.
        eps: the LayerNorm epsilon.
        activation: ``"relu"`` (the registered statement) or ``"gelu"`` (exact GELU, as GPT-2 and BERT;
            its FFN is the registered ``feedforward.gelu_ffn``).

    Returns:
        ``[..., T, D]``.

    Derivation: ``block.ffn_sublayer``.
    """
    check_rank("x", x, min_rank=2, axes="[..., T, D]")
    if activation not in FFN_BY_ACTIVATION:
        raise ValueError(f"activation: expected one of {tuple(FFN_BY_ACTIVATION)}, got {activation!r}")
    ffn = FFN_BY_ACTIVATION[activation]

    def transform(u):
        return ffn(layer_norm(u, gamma_2, beta_2, eps=eps), w_1, b_1, w_2, b_2)

    return residual(x, transform)


@implements("block.pre_ln")
def transformer_block(x, gamma_1, beta_1, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o,
                      gamma_2, beta_2, w_1, b_1, w_2, b_2, *, n_heads: int, eps, mask=None,
                      activation: str = "relu"):
    r"""The pre-LN transformer block.

    .. math:: h = x + \operatorname{MHA}(\operatorname{LN}_1(x), M), \qquad
              y = h + \operatorname{FFN}(\operatorname{LN}_2(h))

    It is :func:`ffn_sublayer` applied to :func:`attention_sublayer`; each half and
    the whole block are registered, verified equations.  With a causal mask, output
    row ``t`` depends on input rows ``0..t`` only (checked by
    ``experiments/properties/block.py``).

    Args:
        x: ``[..., T, D]``.
        gamma_1, beta_1, gamma_2, beta_2: LayerNorm gains and biases ``[D]``.
        w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o: attention weights ``[D, D]`` and biases ``[D]``.
        w_1, b_1, w_2, b_2: FFN weights ``[D, F]``, ``[F]``, ``[F, D]``, ``[D]``.
        n_heads: H.
        eps: the LayerNorm epsilon (both LayerNorms).
        mask: optional boolean ``[..., T, T]``.
        activation: the FFN activation, ``"relu"`` or ``"gelu"``.

    Returns:
        ``[..., T, D]``.

    Derivation: ``block.pre_ln`` (its halves: ``block.attention_sublayer`` and ``block.ffn_sublayer``).

    References: Xiong et al., 2020, figure 1 (b); Radford et al., GPT-2, 2019.
    """
    h = attention_sublayer(x, gamma_1, beta_1, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o,
                           n_heads=n_heads, eps=eps, mask=mask)
    return ffn_sublayer(h, gamma_2, beta_2, w_1, b_1, w_2, b_2, eps=eps, activation=activation)


class TransformerBlock(nnx.Module):
    """The parameters of a pre-LN block: ``ln1``, ``attn``, ``ln2``, ``ffn`` submodules.

    Calling it runs :func:`transformer_block` with their parameters.

    Args:
        d_model: D.
        n_heads: H, which must divide D.
        d_ff: F.
        eps: the LayerNorm epsilon.
        activation: the FFN activation, ``"relu"`` or ``"gelu"``.
        rngs: the random streams; ``rngs.params`` initialises the weights.

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> TransformerBlock(8, 2, 32, rngs=nnx.Rngs(0))(jnp.ones((3, 8))).shape
    (3, 8)
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, eps: float = 1e-5, activation: str = "relu",
                 rngs: nnx.Rngs):
        check_positive_int("d_model", d_model)
        check_positive_int("n_heads", n_heads)
        check_positive_int("d_ff", d_ff)
        self.eps = float(eps)
        self.ln1 = LayerNorm(d_model, eps=eps, rngs=rngs)
        self.attn = MultiHeadAttention(d_model, n_heads, rngs=rngs)
        self.ln2 = LayerNorm(d_model, eps=eps, rngs=rngs)
        self.ffn = FeedForward(d_model, d_ff, activation=activation, rngs=rngs)

    def __call__(self, x, mask=None):
        """``[..., T, D] -> [..., T, D]``; ``mask`` as in :func:`transformer_block`."""
        a, f = self.attn, self.ffn
        return transformer_block(
            x, self.ln1.gamma[...], self.ln1.beta[...],
            a.w_q[...], a.b_q[...], a.w_k[...], a.b_k[...], a.w_v[...], a.b_v[...], a.w_o[...], a.b_o[...],
            self.ln2.gamma[...], self.ln2.beta[...], f.w_1[...], f.b_1[...], f.w_2[...], f.b_2[...],
            n_heads=a.n_heads, eps=self.eps, mask=mask, activation=f.activation)
