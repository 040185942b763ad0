r"""What training a GPT costs (week 12): matrix-multiply FLOPs, measured from the traced gradient.

.. math:: C = 3\,\bigl(L\,(8D^2 + 4DF + 4TD) + 2DV\bigr)
          \quad\text{FLOPs per token (2 per multiply-add), forward and backward}

Axis letters: V vocabulary, T positions (= the context), D model width, H heads,
F feed-forward hidden width, L layers.

Nothing here restates the formula.  :func:`train_flops_per_token` builds the
:class:`model.gpt.GPT` abstractly (:func:`model.gpt.abstract_gpt`: shapes only), traces
``jax.grad`` of the mean next-token cross-entropy (:func:`model.loss.cross_entropy`) to a
jaxpr without running it, and adds up the FLOPs of every ``dot_general`` in it
(:func:`count_matmul_flops`), so the count follows the code.  The verifier compares it
with the statement of ``cost.train_flops``.

What is counted: products only (``dot_general``: einsum, matmul, ``@``), 2 FLOPs per
multiply-add.  Gathers (the embedding lookup), elementwise operations, reductions
and softmax are not; XLA's cost analysis of a compiled step counts those too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jax.extend import core as jex_core

from model.equation import implements
from model.gpt import GPTConfig, abstract_gpt
from model.loss import cross_entropy
from model.validate import check_positive_int

__all__ = [
    "count_matmul_flops",
    "jaxpr_matmul_flops",
    "loss_gradient_jaxpr",
    "measure_train_flops",
    "train_flops_per_token",
]


def _dot_general_flops(eqn) -> int:
    """2 × (entries of the output) × (length of the contraction): one multiply and one add per term."""
    (lhs_contracting, _), _ = eqn.params["dimension_numbers"]
    lhs_shape = eqn.invars[0].aval.shape
    out_shape = eqn.outvars[0].aval.shape
    return 2 * math.prod(out_shape) * math.prod(lhs_shape[i] for i in lhs_contracting)


def _sub_jaxprs(value):
    """The jaxprs held by one equation parameter (a jaxpr, a closed jaxpr, or a tuple of them)."""
    for v in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(v, jex_core.ClosedJaxpr):
            yield v.jaxpr
        elif isinstance(v, jex_core.Jaxpr):
            yield v


def jaxpr_matmul_flops(jaxpr) -> int:
    """The FLOPs of every ``dot_general`` in ``jaxpr``, sub-jaxprs included.

    The walk enters every jaxpr an equation holds (``jit``/``pjit``, ``custom_jvp_call``,
    ``custom_vjp_call``, ``remat``, ...); a ``scan`` body counts ``length`` times, a ``cond``
    counts its most expensive branch (one branch runs).  Products are counted as
    traced: one whose result is unused still counts.

    Args:
        jaxpr: a ``ClosedJaxpr`` (from :func:`jax.make_jaxpr`) or a ``Jaxpr``.

    Returns:
        the FLOPs, a Python int.

    Raises:
        TypeError: ``jaxpr`` is not a jaxpr.
        ValueError: a ``while`` loop containing products: its trip count is not known
            from the jaxpr.
    """
    if isinstance(jaxpr, jex_core.ClosedJaxpr):
        jaxpr = jaxpr.jaxpr
    if not isinstance(jaxpr, jex_core.Jaxpr):
        raise TypeError(f"jaxpr: expected a Jaxpr or ClosedJaxpr, got {type(jaxpr).__name__}")
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_general_flops(eqn)
        elif name == "scan":
            total += eqn.params["length"] * jaxpr_matmul_flops(eqn.params["jaxpr"])
        elif name == "cond":
            total += max((jaxpr_matmul_flops(b) for b in eqn.params["branches"]), default=0)
        elif name == "while":
            inner = sum(jaxpr_matmul_flops(j) for v in eqn.params.values() for j in _sub_jaxprs(v))
            if inner:
                raise ValueError(f"a while loop holds products of {inner} FLOPs per iteration, but its number "
                                 f"of iterations is not known from the jaxpr; expected products outside "
                                 f"while loops (use lax.scan, whose length is static)")
        else:
            total += sum(jaxpr_matmul_flops(j) for v in eqn.params.values() for j in _sub_jaxprs(v))
    return total


def count_matmul_flops(fn: Callable, *args, **kwargs) -> int:
    """The matrix-multiply FLOPs of ``fn(*args, **kwargs)``, from its jaxpr (nothing is run).

    Args:
        fn: a function of arrays.
        *args, **kwargs: its arguments: arrays or ``jax.ShapeDtypeStruct`` (shapes suffice).

    Returns:
        the FLOPs of every ``dot_general`` (see :func:`jaxpr_matmul_flops`), a Python int.

    >>> import jax, jax.numpy as jnp
    >>> a, b = jax.ShapeDtypeStruct((2, 3), jnp.float32), jax.ShapeDtypeStruct((3, 4), jnp.float32)
    >>> count_matmul_flops(jnp.matmul, a, b)  # 2·3·4 multiply-adds
    48
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a function, got {type(fn).__name__}")
    return jaxpr_matmul_flops(jax.make_jaxpr(fn)(*args, **kwargs))


def loss_gradient_jaxpr(config: GPTConfig, *, batch_size: int = 1) -> jex_core.ClosedJaxpr:
    """The jaxpr of one training gradient: ``jax.grad`` of the mean cross-entropy with respect to the parameters.

    The model is :func:`model.gpt.abstract_gpt` ``(config)`` and the batch ``[B, T]``
    int32 inputs and targets with ``T = config.context``; everything is abstract, so
    this takes seconds even for GPT-2 XL.  The outputs of the jaxpr are the gradients:
    one array per parameter, in its shape and dtype.

    Args:
        config: the model.
        batch_size: B, the sequences in the batch.

    Raises:
        TypeError: ``config`` is not a :class:`model.gpt.GPTConfig`.
        ValueError: ``batch_size`` is not a positive integer.
    """
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config: expected a GPTConfig, got {type(config).__name__}")
    check_positive_int("batch_size", batch_size)
    graphdef, params, *rest = nnx.split(abstract_gpt(config), nnx.Param, ...)

    def mean_loss(p, x_BT, y_BT):
        return jnp.mean(cross_entropy(nnx.merge(graphdef, p, *rest)(x_BT), y_BT))

    tokens_BT = jax.ShapeDtypeStruct((batch_size, config.context), jnp.int32)
    return jax.make_jaxpr(jax.grad(mean_loss))(params, tokens_BT, tokens_BT)


def measure_train_flops(config: GPTConfig, *, batch_size: int = 1) -> int:
    """Matrix-multiply FLOPs of one forward and backward pass of ``config`` over a ``[B, context]`` batch.

    :func:`jaxpr_matmul_flops` of :func:`loss_gradient_jaxpr`; the optimizer update is
    not included (it holds no products).
    """
    return jaxpr_matmul_flops(loss_gradient_jaxpr(config, batch_size=batch_size))


def _flag(name: str, value) -> bool:
    if not isinstance(value, (bool, int, float)) or value not in (0, 1):
        raise ValueError(f"{name}: expected True/False (or 1/0), got {value!r}")
    return bool(value)


@implements("cost.train_flops")
def train_flops_per_token(vocab_size: int, context: int, d_model: int, n_heads: int, d_ff: int, n_layers: int, *,
                          tie_embeddings=True, learned_positions=True, biases=True, batch_size: int = 1) -> int:
    r"""Matrix-multiply FLOPs per token of one training step's forward and backward pass, measured.

    .. math:: C = 3\,\bigl(L\,(8D^2 + 4DF + 4TD) + 2DV\bigr)

    counted on the code, not from the formula: the FLOPs of every ``dot_general`` in the
    jaxpr of ``jax.grad`` of the mean next-token cross-entropy of the abstract
    :class:`model.gpt.GPT` (:func:`measure_train_flops`), divided by the ``B·T`` tokens
    of the batch, ``T = context``.  Attention is counted over all ``T × T`` scores, as
    computed; neither tying the head nor the kind of positions changes the count.

    Args:
        vocab_size: V.
        context: T, the sequence length counted.
        d_model: D.
        n_heads: H (the count does not depend on it).
        d_ff: F.
        n_layers: L.
        tie_embeddings: True/1 for a head tied to the token embedding, False/0 for its own ``[D, V]``.
        learned_positions: True/1 for a learned ``[T, D]`` position table, False/0 for sinusoidal.
        biases: True/1 for biases in the projections and LayerNorms, False/0 for none (the count
            does not depend on it: a bias addition is no product).
        batch_size: B, the sequences of the traced batch (the count per token does not depend on it).

    Returns:
        C, a Python int.

    Raises:
        ValueError: an invalid shape (as :class:`model.gpt.GPTConfig` checks it) or flag.

    Derivation: ``cost.train_flops``.

    References: Kaplan et al., "Scaling Laws for Neural Language Models", 2020, table 1;
    Hoffmann et al. (Chinchilla), 2022, appendix F.

    >>> train_flops_per_token(65, 32, 32, 2, 128, 2)  # the tiny preset
    184512
    """
    config = GPTConfig(vocab_size=vocab_size, context=context, d_model=d_model, n_heads=n_heads, d_ff=d_ff,
                       n_layers=n_layers, tie_embeddings=_flag("tie_embeddings", tie_embeddings),
                       positional="learned" if _flag("learned_positions", learned_positions) else "sinusoidal",
                       bias=_flag("biases", biases))
    total = measure_train_flops(config, batch_size=batch_size)
    per_token, remainder = divmod(total, batch_size * context)
    if remainder:
        raise ValueError(f"the traced gradient has {total} FLOPs, not a multiple of the {batch_size * context} "
                         f"tokens of its batch; expected every product to run once per token")
    return per_token
