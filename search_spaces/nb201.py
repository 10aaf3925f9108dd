"""``nb201``: the NAS-Bench-201 cell (Dong & Yang, ICLR 2020), 6 edges x 5 operations.

A cell is a DAG over 4 nodes; node ``j`` sums ``op(node i)`` over its incoming edges ``i < j``, and
node 3 is the cell's output. One label per edge, in the benchmark's own order::

    edge1_0, edge2_0, edge2_1, edge3_0, edge3_1, edge3_2     (edge{to}_{from})

each taking ``none`` (zero), ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3`` or
``avg_pool_3x3``: 15,625 cells, all tabulated (accuracy, latency, size, training time) by
:mod:`nni_hwnas.evaluation.tabular`. Costs come from that table, not from layer specs.

Which labels matter (:meth:`Nb201Definition.active_labels`): an edge ``i -> j`` changes the network
only when node ``i`` carries a signal from the input and node ``j`` reaches the output through
non-``none`` edges; the others compute on zeros or feed nothing. That is what lets the fitness cache
treat, e.g., every cell whose output node receives only ``none`` as one network (table accuracy
9.71% for all 125 of them on CIFAR-10).
"""

from __future__ import annotations

from typing import Any, Mapping

from nni_hwnas.errors import UserError

from .definition import SpaceDefinition
from .layers import LayerSpec

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from), the benchmark's Op0..Op5
N_NODES = 4


def edge_label(to: int, source: int) -> str:
    return f"edge{to}_{source}"


LABELS = tuple(edge_label(to, source) for to, source in EDGES)


class _OpRule:
    """Edge operations are names from :data:`OPS` (the :class:`ChoiceRule` kinds are numeric)."""

    def describe(self) -> str:
        return f"one of {', '.join(OPS)}"

    def check(self, space: str, name: str, value: Any) -> Any:
        if value not in OPS:
            raise UserError(f"space {space!r}: choice {name!r} has value {value!r}; allowed: {self.describe()}")
        return value


class Nb201Definition(SpaceDefinition):
    """The NAS-Bench-201 cell space; ``choices: {op: [...]}`` narrows the operations of every edge."""

    name = "nb201"
    rules = {"op": _OpRule()}  # type: ignore[dict-item]
    defaults = {"op": list(OPS)}

    def labels(self) -> dict[str, tuple]:
        return {label: self.choices["op"] for label in LABELS}

    def active_labels(self, sample: Mapping[str, Any]) -> list[str]:
        live = [sample[label] != "none" for label in LABELS]
        fed = [True] + [False] * (N_NODES - 1)  # node carries a signal from the input
        for k, (to, source) in enumerate(EDGES):  # EDGES is in topological order of ``to``
            fed[to] = fed[to] or (live[k] and fed[source])
        drains = [False] * (N_NODES - 1) + [True]  # node reaches the output
        for k, (to, source) in sorted(enumerate(EDGES), key=lambda item: -item[1][1]):
            drains[source] = drains[source] or (live[k] and drains[to])
        return [label for (to, source), label in zip(EDGES, LABELS) if fed[source] and drains[to]]

    def describe(self, sample: Mapping[str, Any]) -> list[LayerSpec]:
        raise UserError("space 'nb201' has no layer list: its costs come from the NAS-Bench-201 table; "
                        "use `evaluator.kind: tabular` with it")

    def arch_string(self, sample: Mapping[str, Any]) -> str:
        """NAS-Bench-201's own notation, ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        full = self.complete(sample)
        nodes = ["|" + "|".join(f"{full[edge_label(to, s)]}~{s}" for s in range(to)) + "|"
                 for to in range(1, N_NODES)]
        return "+".join(nodes)
