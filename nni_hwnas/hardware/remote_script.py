"""One self-contained measuring script for a target device that has only Python and torch.

The script carries the source of :mod:`nni_hwnas.hardware.device_main` and of every module of
ours it imports (found by reading their ``import`` statements, so a new operator module is carried
along without a list to keep), serves them from memory through an import hook, and runs the
measuring loop. Our packages' ``__init__`` files are replaced by empty ones: the device never
imports NNI, numpy or YAML. The script is ASCII (sources travel JSON-escaped), so the device's
locale does not matter, and it is fed on stdin after its length (:data:`BOOTSTRAP`), so nothing
is written to the device's disk.
"""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

OUR_PACKAGES = ("nni_hwnas", "search_spaces")
ENTRY = "nni_hwnas.hardware.device_main"

# Run by ``python -c`` on the device: read the script's length, then the script, and execute it.
BOOTSTRAP = ("import sys;n=int(sys.stdin.readline());"
             "exec(compile(sys.stdin.read(n),'<nni-hwnas measuring script>','exec'))")

_LOADER = '''
import importlib.abc, importlib.util, sys
SOURCES = json.loads(SOURCES_JSON)

class _Shipped(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the shipped modules; packages among them are empty."""
    def find_spec(self, name, path=None, target=None):
        if name in SOURCES:
            return importlib.util.spec_from_loader(name, self, is_package=SOURCES[name] is None)
        return None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        source = SOURCES[module.__spec__.name]
        if source is None:
            module.__path__ = []
        else:
            exec(compile(source, "<shipped " + module.__spec__.name + ">", "exec"), module.__dict__)

sys.meta_path.insert(0, _Shipped())
import ENTRY as _entry
_entry.main()
'''


def _module_path(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # ``pkg.module.Name``: a name imported from a module, not a module
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def _our_imports(name: str, source: str) -> set[str]:
    """Modules of our packages that ``name`` imports at module level (relative ones resolved)."""
    package = name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {m for m in found if m.split(".")[0] in OUR_PACKAGES and _module_path(m) is not None
            and _module_path(m).name != "__init__.py"}


def shipped_sources(entry: str = ENTRY) -> dict[str, str | None]:
    """``{module: source}`` for ``entry`` and everything of ours it needs; packages map to None."""
    sources: dict[str, str | None] = {}
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in sources:
            continue
        path = _module_path(name)
        if path is None:
            raise RuntimeError(f"the measuring script needs {name}, which is not importable here")
        sources[name] = path.read_text(encoding="utf-8")
        todo += sorted(_our_imports(name, sources[name]) - set(sources))
    for name in list(sources):
        parts = name.split(".")
        for i in range(1, len(parts)):
            sources.setdefault(".".join(parts[:i]), None)
    return sources


def measuring_script() -> str:
    """The whole script, ASCII, ready to be sent after ``len(script)`` on a line of its own."""
    header = "import json\nSOURCES_JSON = " + json.dumps(json.dumps(shipped_sources(), ensure_ascii=True)) + "\n"
    return header + _LOADER.replace("ENTRY", ENTRY)
