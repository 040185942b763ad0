"""Sampled checks of the training cost (week 12): the measured FLOPs at sampled shapes, flags and batch sizes."""

from __future__ import annotations

import itertools

import sympy as sp

import derivations
from experiments.properties import check
from model.cost import measure_train_flops, train_flops_per_token
from model.gpt import GPTConfig


def _sample_shape(rng) -> dict[str, int]:
    """A small GPT shape: even D (the sinusoidal encoding needs sin/cos pairs), H dividing D."""
    n_heads = int(rng.integers(1, 3))
    return {"vocab_size": int(rng.integers(3, 20)), "context": int(rng.integers(1, 9)),
            "d_model": n_heads * 2 * int(rng.integers(1, 3)), "n_heads": n_heads,
            "d_ff": int(rng.integers(1, 13)), "n_layers": int(rng.integers(1, 4))}


def _statement(shape: dict[str, int]) -> int:
    """The registered statement of ``cost.train_flops`` evaluated at ``shape``."""
    d = derivations.get("cost.train_flops")
    letters = {str(s): s for s in d.statement.rhs.free_symbols}
    values = {"V": shape["vocab_size"], "T": shape["context"], "D": shape["d_model"], "F": shape["d_ff"],
              "L": shape["n_layers"]}
    return int(sp.Integer(d.statement.rhs.subs({letters[k]: v for k, v in values.items() if k in letters})))


@check("cost.train_flops", "a sampled small shape, each of the eight head/position/bias variants (tied or not, "
                           "learned or sinusoidal, biases or none): max |measured − statement| FLOPs per token")
def _every_variant(rng):
    shape = _sample_shape(rng)
    expected = _statement(shape)
    return max(abs(train_flops_per_token(**shape, tie_embeddings=tie, learned_positions=learned, biases=bias)
                   - expected) for tie, learned, bias in itertools.product((True, False), repeat=3)), 0


@check("cost.train_flops", "a sampled small shape: |FLOPs of a batch of 3 sequences − 3 × those of one|: the count "
                           "is per token, nothing is shared across the batch")
def _per_token(rng):
    config = GPTConfig(**_sample_shape(rng))
    return abs(measure_train_flops(config, batch_size=3) - 3 * measure_train_flops(config, batch_size=1)), 0
