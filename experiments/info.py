"""What a GPT preset costs before it is trained: parameters, FLOPs per token and per step, training memory.

:func:`info` gathers the numbers for ``tfd info --preset NAME``, each from two
independent sources where there are two:

* parameters: the registered statement of ``gpt.param_count`` evaluated at the
  config (SymPy) and the count of the model built abstractly
  (:func:`model.gpt.count_parameters` of :func:`model.gpt.abstract_gpt`); they must be equal;
* FLOPs per token: the matrix-multiply FLOPs measured from the jaxpr of the training
  gradient (:mod:`model.cost`) and the statement of ``cost.train_flops``, also equal;
  next to them the usual estimate 6N + 12LTD (``derivations.cost.approximation``);
* memory for training in float32: parameters, gradients (the output avals of the
  same gradient jaxpr) and the optimizer state of :func:`experiments.train.make_optimizer`
  (``jax.eval_shape`` of its ``init``: AdamW's two moments and its step counters).
  Activations are not included: they depend on the batch and on what XLA keeps for
  the backward pass.

:func:`format_info` renders the result as text.

>>> d = info(GPTConfig.tiny())
>>> d["parameters"]["formula"] == d["parameters"]["model"] == 28576
True
>>> d["flops_per_token"]["exact"]
184512
"""

from __future__ import annotations

import math
from typing import Any

import jax
import sympy as sp
from flax import nnx

import derivations
from derivations.cost import approximation, matmul_parameters
from derivations.gpt import N, biases, learned_positions, tie_embeddings
from derivations.symbolic import size_symbols
from experiments.train import TrainConfig, make_optimizer
from model.cost import jaxpr_matmul_flops, loss_gradient_jaxpr
from model.gpt import GPTConfig, abstract_gpt, count_parameters

__all__ = ["GIB", "format_info", "info", "symbol_values"]

#: bytes in a GiB
GIB = 2**30


def symbol_values(config: GPTConfig) -> dict[sp.Symbol, int]:
    """The SymPy symbols of the registered statements (V, T, D, H, F, L and the two flags) at ``config``."""
    s = size_symbols()
    return {s["V"]: config.vocab_size, s["T"]: config.context, s["D"]: config.d_model, s["H"]: config.n_heads,
            s["F"]: config.d_ff, s["L"]: config.n_layers, tie_embeddings: int(config.tie_embeddings),
            learned_positions: int(config.positional == "learned"), biases: int(config.bias)}


def _evaluate(expr, values: dict) -> int:
    value = sp.sympify(expr).subs(values)
    if not value.is_Integer:
        raise ValueError(f"expected a whole number from {expr} at {values}, got {value}")
    return int(value)


def _bytes(tree) -> int:
    """Bytes of every array (or ShapeDtypeStruct) leaf of ``tree``."""
    return sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def info(config: GPTConfig, *, train_config: TrainConfig | None = None) -> dict[str, Any]:
    """Parameters, training FLOPs and training memory of ``config``, measured and derived.

    Nothing is allocated or run: the model, its gradient and the optimizer state are
    built abstractly (seconds even for GPT-2 XL).

    Args:
        config: the model.
        train_config: the batch (``batch_size`` sequences, ``grad_accum`` micro-batches)
            and optimizer; :meth:`TrainConfig.tiny` when ``None``.  The optimizer's state has
            the same size whatever its settings.

    Returns:
        a dict of plain values:

        * ``"config"``: ``config.to_dict()``;
        * ``"batch"``: ``batch_size``, ``grad_accum``, ``tokens_per_step`` (A·B·T);
        * ``"parameters"``: ``formula`` (``gpt.param_count``), ``model`` (built), ``equal``,
          ``in_products`` (the weights of products, ``derivations.cost.matmul_parameters``)
          and ``elsewhere`` (the rest);
        * ``"flops_per_token"``: ``exact`` (measured), ``formula`` (``cost.train_flops``),
          ``equal``, ``approximation`` (6N + 12LTD), ``attention`` (12LTD, the part in no weight);
        * ``"flops_per_step"``: ``exact`` and ``approximation``, per token times ``tokens_per_step``;
        * ``"memory"``: for ``parameters``, ``gradients``, ``optimizer`` and ``total``, a dict
          with ``bytes`` and ``gib``; and ``bytes_per_parameter`` (total / N).

    Raises:
        TypeError: ``config`` is not a :class:`GPTConfig` or ``train_config`` not a :class:`TrainConfig`.
    """
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config: expected a GPTConfig, got {type(config).__name__}")
    tc = TrainConfig.tiny() if train_config is None else train_config
    if not isinstance(tc, TrainConfig):
        raise TypeError(f"train_config: expected a TrainConfig or None, got {type(tc).__name__}")
    values = symbol_values(config)

    model = abstract_gpt(config)
    params = nnx.state(model, nnx.Param)
    n_model = count_parameters(model)
    n_formula = _evaluate(derivations.get("gpt.param_count").statement.rhs, values)
    in_products = _evaluate(matmul_parameters, values)

    gradient = loss_gradient_jaxpr(config)  # a batch of one sequence of T = context tokens
    exact = jaxpr_matmul_flops(gradient) // config.context
    formula = _evaluate(derivations.get("cost.train_flops").statement.rhs, values)
    approx = _evaluate(approximation, {**values, N: n_model})
    attention = _evaluate(12 * size_symbols()["L"] * size_symbols()["T"] * size_symbols()["D"], values)
    tokens = tc.grad_accum * tc.batch_size * config.context

    sizes = {"parameters": _bytes(params), "gradients": _bytes(gradient.out_avals),
             "optimizer": _bytes(jax.eval_shape(make_optimizer(tc).init, params))}
    sizes["total"] = sum(sizes.values())
    return {
        "config": config.to_dict(),
        "batch": {"batch_size": tc.batch_size, "grad_accum": tc.grad_accum, "tokens_per_step": tokens},
        "parameters": {"formula": n_formula, "model": n_model, "equal": n_formula == n_model,
                       "in_products": in_products, "elsewhere": n_model - in_products},
        "flops_per_token": {"exact": exact, "formula": formula, "equal": exact == formula,
                            "approximation": approx, "attention": attention},
        "flops_per_step": {"exact": exact * tokens, "approximation": approx * tokens},
        "memory": {**{k: {"bytes": v, "gib": v / GIB} for k, v in sizes.items()},
                   "bytes_per_parameter": sizes["total"] / n_model},
    }


def _agreement(a: int, b: int, what: str) -> str:
    return f"{what}: equal" if a == b else f"{what} DIFFER: {a:,} vs {b:,}"


def format_info(d: dict[str, Any]) -> str:
    """The result of :func:`info` as a few aligned lines of text."""
    c, p, f, s, m, b = (d[k] for k in ("config", "parameters", "flops_per_token", "flops_per_step", "memory",
                                        "batch"))
    head = "tied head" if c["tie_embeddings"] else "untied head"
    excess = f["approximation"] / f["exact"] - 1
    shape = (f"V={c['vocab_size']} T={c['context']} D={c['d_model']} H={c['n_heads']} F={c['d_ff']} "
             f"L={c['n_layers']}, {c['positional']} positions, {head}, {c['activation']}")
    n_check = _agreement(p["formula"], p["model"], "gpt.param_count and the built model")
    c_check = _agreement(f["exact"], f["formula"], "measured and cost.train_flops")
    batch = (f"B={b['batch_size']} sequences x A={b['grad_accum']} micro-batch(es) x T={c['context']} "
             f"= {b['tokens_per_step']:,} tokens")
    lines = [
        f"model          {shape}",
        f"parameters     N = {p['model']:>17,}  ({n_check})",
        f"               {p['in_products']:,} in products (6 FLOPs per token each), {p['elsewhere']:,} elsewhere",
        f"FLOPs per token, forward + backward at T = {c['context']}:",
        f"  matmul (exact) {f['exact']:>17,}  ({c_check}; attention {f['attention']:,})",
        f"  6N + 12LTD     {f['approximation']:>17,}  ({excess:+.2%})",
        f"FLOPs per step, {batch}:",
        f"  matmul (exact) {s['exact']:>17,}  ({s['exact']:.3e})",
        f"  6N + 12LTD     {s['approximation']:>17,}  ({s['approximation']:.3e})",
        "training memory, activations not included:",
    ]
    names = {"parameters": "parameters", "gradients": "gradients", "optimizer": "AdamW state", "total": "total"}
    for key, name in names.items():
        lines.append(f"  {name:<13}{m[key]['bytes']:>18,} B  {m[key]['gib']:>10.4g} GiB")
    lines.append(f"  ({m['bytes_per_parameter']:.2f} bytes per parameter)")
    return "\n".join(lines)
