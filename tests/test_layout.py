"""The architecture stays as drawn: no import cycles between our modules, and an nnictl trial
process imports neither matplotlib nor ``nni.nas`` (both cost seconds in every trial)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from conftest import REPO

PACKAGES = ("nni_hwnas", "strategies", "search_spaces")


def import_graph() -> dict[str, set[str]]:
    """module -> our modules it imports anywhere in its body (lazy imports inside functions too).

    Imports under ``if TYPE_CHECKING:`` are left out: they never run, so they make no cycle."""
    modules = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        typing_only = {id(inner) for node in ast.walk(tree) if _is_type_checking_block(node)
                       for inner in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_our_modules():
    graph = import_graph()
    assert "nni_hwnas.hardware.predictor" in graph and graph["nni_hwnas.evaluation.cost_trial"]
    assert cycles(graph) == []


def test_nnictl_trial_imports_neither_matplotlib_nor_nni_nas():
    code = ("import sys, nni, nni_hwnas.evaluation.hpo_trial, nni_hwnas.experiment.trial_args, "
            "nni_hwnas.evaluation.trial; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib' or m.startswith('nni.nas')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_a_whole_nnictl_trial_run_imports_neither_matplotlib_nor_nni_nas_nor_dynamo(tmp_path, nni_home):
    """The real trial process end to end (data, training, latency, report), lazy imports included:
    what ``experiments/benchmarks/trial_imports.py`` times. ``torch._dynamo`` comes with torch's
    optimizers (~2-3 CPU-s per trial); training uses ``nni_hwnas.evaluation.sgd`` instead."""
    from experiments.benchmarks.trial_imports import WHOLE_TRIAL_CONFIG, whole_trial_code

    (tmp_path / "trial.yaml").write_text(WHOLE_TRIAL_CONFIG)
    result = subprocess.run([sys.executable, "-c", whole_trial_code(tmp_path / "trial.yaml")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "HEAVY []" in result.stdout.splitlines(), result.stdout[-2000:]
