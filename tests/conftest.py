"""Test configuration: JAX is strict here, as DESIGN.md asks.

Rank promotion raises, so a model function that silently broadcasts a [D] bias
against a [T, D] array fails the suite.  Tests do not write into the working
directory (use ``tmp_path``) and need no network.

The tests compile with LLVM's optimisation level 0 (``--xla_backend_optimization_level=0``
in ``XLA_FLAGS``, unless that flag is set already): it about halves XLA's compile time,
which is most of this suite's, and changes how fast the code runs, not what it computes.
``tfd verify`` (part of ``tfd course``) checks every derivation against the code compiled
at the default level; ``XLA_FLAGS=--xla_backend_optimization_level=2 python -m pytest``
runs the tests that way.
"""

import os

_LLVM_LEVEL = "--xla_backend_optimization_level"
if _LLVM_LEVEL not in os.environ.get("XLA_FLAGS", ""):   # before JAX starts its backend
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_LLVM_LEVEL}=0".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def _highest_matmul_precision():
    """Compare against SymPy at full float32 precision: no TF32 on GPUs."""
    with jax.default_matmul_precision("highest"):
        yield

import tempfile  # noqa: E402

from hypothesis import settings  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

# Tests must not write into the working directory: no example database, and
# hypothesis's own cache goes to a temporary directory.
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="tfd-hypothesis-"))
settings.register_profile("project", database=None, deadline=None)
settings.load_profile("project")


@pytest.fixture(scope="session")
def weekly_runs(tmp_path_factory):
    """One runs folder for the weekly experiments' tests: the tiny shared GPT is trained into it once per session."""
    return tmp_path_factory.mktemp("weekly")


@pytest.fixture(scope="session")
def tiny_experiment(weekly_runs):
    """``tiny_experiment(name) -> (folder, results)``: the weekly experiment ``name`` at its tiny size.

    Run once per session into ``weekly_runs/<name>`` (beside the tiny shared GPT) and
    shared by every test that reads it: the experiment's own tests and the lesson pages'.
    """
    from experiments import weekly

    cache: dict = {}

    def run(name: str):
        if name not in cache:
            out = weekly_runs / name
            with jax.default_matmul_precision("highest"):
                cache[name] = out, weekly.get(name).run(out, tiny=True, progress=False)
        return cache[name]

    return run
