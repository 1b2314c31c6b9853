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
