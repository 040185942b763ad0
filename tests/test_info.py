"""``tfd info``: parameters, FLOPs and memory of a preset, each from the registry and from the built model."""

import dataclasses
import functools

import jax
import pytest
from flax import nnx

from experiments.info import GIB, format_info, info, symbol_values
from experiments.train import TrainConfig, make_optimizer
from model.cost import train_flops_per_token
from model.gpt import GPT, GPTConfig, abstract_gpt, count_parameters

TINY = GPTConfig.tiny()


@functools.cache
def _info(config: GPTConfig, train_config: TrainConfig | None = None) -> dict:
    return info(config, train_config=train_config)


def _bytes(tree) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("config", [TINY, dataclasses.replace(TINY, tie_embeddings=False, positional="sinusoidal")],
                         ids=["tiny", "untied-sinusoidal"])
def test_parameters_from_the_formula_equal_the_built_model(config):
    p = _info(config)["parameters"]
    assert p["equal"] and p["formula"] == p["model"] == count_parameters(abstract_gpt(config))
    assert p["in_products"] + p["elsewhere"] == p["model"]


def test_tiny_numbers():
    d = _info(TINY)
    f = d["flops_per_token"]
    assert f["exact"] == f["formula"] == train_flops_per_token(65, 32, 32, 2, 128, 2) and f["equal"]
    n, (l, t, dm) = d["parameters"]["model"], (TINY.n_layers, TINY.context, TINY.d_model)
    assert f["approximation"] == 6 * n + 12 * l * t * dm and f["attention"] == 12 * l * t * dm
    tokens = TrainConfig.tiny().batch_size * TINY.context
    assert d["batch"]["tokens_per_step"] == tokens
    assert d["flops_per_step"] == {"exact": f["exact"] * tokens, "approximation": f["approximation"] * tokens}


def test_gpt2_small_numbers():
    d = _info(GPTConfig.preset("gpt2-small"))
    assert d["parameters"]["model"] == d["parameters"]["formula"] == 124_439_808
    assert d["flops_per_token"]["exact"] == 854_438_400
    assert d["flops_per_token"]["approximation"] == 859_885_056
    # float32 parameters, gradients and AdamW's two moments: 16 bytes per parameter (and two step counters)
    assert d["memory"]["parameters"]["bytes"] == 4 * 124_439_808
    assert 16 * 124_439_808 <= d["memory"]["total"]["bytes"] < 16 * 124_439_808 + 64


@pytest.mark.parametrize(("batch_size", "grad_accum"), [(1, 1), (4, 3)])
def test_flops_per_step_follow_the_batch_and_memory_does_not(batch_size, grad_accum):
    tc = TrainConfig.tiny(batch_size=batch_size, grad_accum=grad_accum)
    d, base = _info(TINY, tc), _info(TINY)
    assert d["batch"]["tokens_per_step"] == batch_size * grad_accum * TINY.context
    assert d["flops_per_step"]["exact"] == base["flops_per_token"]["exact"] * batch_size * grad_accum * TINY.context
    assert d["memory"] == base["memory"]


def test_memory_is_that_of_the_real_parameters_and_optimizer_state():
    """The abstract measurement equals the bytes of a built model, its gradients and an initialised AdamW."""
    m = _info(TINY)["memory"]
    params = nnx.state(GPT(TINY, rngs=nnx.Rngs(0)), nnx.Param)
    state = make_optimizer(TrainConfig.tiny()).init(params)
    assert m["parameters"]["bytes"] == m["gradients"]["bytes"] == _bytes(params)
    assert m["optimizer"]["bytes"] == _bytes(state)
    assert m["total"]["bytes"] == _bytes(params) * 2 + _bytes(state)
    assert m["total"]["gib"] == m["total"]["bytes"] / GIB
    assert 2 * _bytes(params) <= _bytes(state) < 2 * _bytes(params) + 64  # two moments and the counters


def test_format_info_states_every_number_and_the_agreements():
    d = _info(GPTConfig.preset("gpt2-small"))
    text = format_info(d)
    for number in ("124,439,808", "854,438,400", "859,885,056", "+0.64%", "1,991,036,936", "GiB", "16.00"):
        assert number in text, number
    assert text.count(": equal") == 2 and "DIFFER" not in text
    broken = {**d, "parameters": {**d["parameters"], "formula": 1}}
    assert "DIFFER" in format_info(broken)


def test_symbol_values_name_every_symbol_of_the_statements():
    import derivations

    values = symbol_values(TINY)
    for i in ("gpt.param_count", "cost.train_flops"):
        assert derivations.get(i).statement.rhs.free_symbols <= set(values)


def test_bad_input():
    with pytest.raises(TypeError, match="GPTConfig"):
        info("tiny")
    with pytest.raises(TypeError, match="TrainConfig"):
        info(TINY, train_config={"batch_size": 8})
