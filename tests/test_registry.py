"""The contract between the registry and the model, both ways (DESIGN.md, items 1-4)."""

import inspect
import subprocess
import sys

import pytest

import derivations
import model
from derivations.registry import Derivation
from experiments.properties import PROPERTIES
from experiments.verify import resolve

DERIVATIONS = list(derivations.REGISTRY.values())


def test_registry_is_not_empty_and_covers_the_weeks():
    weeks = {d.week for d in DERIVATIONS}
    assert {1, 5, 6, 7, 8, 9, 10, 11} <= weeks, f"weeks with derivations: {sorted(weeks)}"


@pytest.mark.parametrize("d", DERIVATIONS, ids=lambda d: d.id)
def test_derivation_names_a_marked_implementation(d: Derivation):
    fn = resolve(d.implementation)
    assert d.implementation in model.IMPLEMENTATIONS, f"{d.implementation} is not marked with @implements"
    assert d.id in fn.__derivation_ids__, f"{d.implementation} does not declare @implements({d.id!r})"
    assert d.implementation.startswith(f"model.{d.concept}."), (
        f"{d.id} lives in derivations/{d.concept}.py, so its code belongs in model/{d.concept}.py")


@pytest.mark.parametrize("d", DERIVATIONS, ids=lambda d: d.id)
def test_implementation_takes_the_statement_symbols_by_name(d: Derivation):
    params = inspect.signature(resolve(d.implementation)).parameters
    wanted = set(d.arguments) | set(d.constants) | set(d.size_args)
    missing = wanted - set(params)
    assert not missing, f"{d.implementation} lacks arguments {sorted(missing)} named in {d.id}"
    extra_required = {n for n, p in params.items()
                      if p.default is inspect.Parameter.empty and n not in wanted
                      and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    assert not extra_required, f"{d.implementation} requires {sorted(extra_required)}, unknown to {d.id}"


@pytest.mark.parametrize("d", DERIVATIONS, ids=lambda d: d.id)
def test_implementation_docstring_states_equation_shapes_and_id(d: Derivation):
    doc = inspect.getdoc(resolve(d.implementation)) or ""
    assert d.id in doc, f"the docstring of {d.implementation} does not name derivation {d.id}"
    assert "math" in doc or "\\" in doc, f"the docstring of {d.implementation} states no LaTeX equation"


@pytest.mark.parametrize("name", sorted(model.IMPLEMENTATIONS))
def test_every_marked_implementation_is_registered(name):
    fn, ids = model.IMPLEMENTATIONS[name]
    for i in ids:
        assert i in derivations.REGISTRY, f"{name} claims to implement {i!r}, which is not registered"
        assert derivations.REGISTRY[i].implementation == name, (
            f"{name} claims {i!r}, but the registry names {derivations.REGISTRY[i].implementation}")


def test_every_sampled_check_belongs_to_a_registered_derivation():
    unknown = sorted(set(PROPERTIES) - set(derivations.REGISTRY))
    assert not unknown, f"sampled checks for unregistered ids: {unknown}"


@pytest.mark.parametrize(("package", "forbidden"), [("derivations", ("jax", "flax")), ("model", ("sympy",))])
def test_layering(package, forbidden):
    code = (f"import sys, {package}; found = [m for m in {forbidden!r} if m in sys.modules]; "
            "print(*found); sys.exit(1 if found else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, f"importing {package} imports {done.stdout.strip()}: {done.stderr[-2000:]}"


def test_ids_are_unique_and_well_formed():
    with pytest.raises(ValueError, match="registered twice"):
        derivations.register(DERIVATIONS[0])
    for d in DERIVATIONS:
        assert d.id.count(".") == 1 and d.id == d.id.lower(), d.id
