"""The shape of the code: kb's module import graph (lazy imports inside functions included) has no cycle, no module
imports another module's underscore name, and no module is longer than 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

KB = Path(__file__).resolve().parents[1] / "kb"
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(KB.rglob("*.py")):
        parts = list(path.relative_to(KB.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _parse(path: Path) -> ast.Module:
    """The module's syntax tree. Python 3.11 keeps ast.parse's recursion count in state shared by all threads, so a
    parse that races another thread's (a library's background thread in this pytest process) can fail with
    "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905; seen once in the full suite): the
    file is parsed again."""
    text = path.read_text(encoding="utf-8")
    for _ in range(4):
        try:
            return ast.parse(text)
        except SystemError:
            pass
    return ast.parse(text)


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str]]:
    """(imported kb module, imported name or "") for every import statement in the module, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.split(".")[0] == "kb"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "kb":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.append((sub, "") if sub in modules else (base, a.name))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {m for m, _ in _imports(name, path, modules) if m in modules and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_import_graph_has_no_cycle():
    graph = _graph()
    print("\nkb import graph (module -> the kb modules it imports):")
    for name in sorted(graph):
        print(f"  {name} -> {', '.join(sorted(graph[name])) or '-'}")
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_no_module_imports_another_modules_private_names():
    modules = _modules()
    offenders = []
    for name, path in modules.items():
        for target, imported in _imports(name, path, modules):
            private_module = any(p.startswith("_") and not p.startswith("__") for p in target.split("."))
            outside = not name.startswith(target.rpartition(".")[0] + ".") or target.rpartition(".")[0] == "kb"
            if imported.startswith("_") and not imported.startswith("__") and target != name:
                offenders.append(f"{name}: from {target} import {imported}")
            elif private_module and outside:
                offenders.append(f"{name}: imports {target}")
    assert not offenders, "\n".join(offenders)


def test_no_module_is_longer_than_500_lines():
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long
