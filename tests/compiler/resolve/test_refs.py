"""Reference cycles are found without recursion (graphlib), one error per cycle."""

from __future__ import annotations

from specops.diagnostics import Diagnostics
from specops.resolve.refs import Edge, EnvView, _check_cycles


def test_a_very_long_reference_chain_is_no_cycle_and_no_recursion_error():
    view = EnvView("dev", None, "local", None)
    view.edges = [Edge(f"Model/m{i}", f"Model/m{i + 1}", ("llm", "base", "fromModel")) for i in range(20_000)]
    out = Diagnostics()
    _check_cycles(view, out)  # the depth-first search this replaced hit Python's recursion limit
    assert out.items == []


def test_the_kahn_pass_tells_cycles_from_none():
    """_check_cycles first asks a plain Kahn pass whether there is any cycle (graphlib's
    search runs only when there is): a diamond is none, a loop or a self-reference is one."""
    from specops.resolve.refs import _acyclic

    def edges(*pairs: str) -> list[Edge]:
        return [Edge(a, b, ("model",)) for a, b in (p.split(">") for p in pairs)]

    assert _acyclic(edges("a>b", "a>c", "b>d", "c>d", "d>e"))
    assert _acyclic([])
    assert not _acyclic(edges("a>b", "b>c", "c>a"))
    assert not _acyclic(edges("x>y", "a>a"))
    assert not _acyclic(edges("r>a", "a>b", "b>a", "b>z"))  # a cycle reached from a root
