"""The house rules, checked on the source tree: layers import only downwards, no import
cycles, imports at the top of modules, no module over 600 lines."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "floatip"

# A module may import from its own layer and the layers below it.
LAYERS = {"core": 0, "store": 1, "dataplane": 1, "client": 1, "metrics": 1, "service": 2,
          "agent": 2, "lab": 2, "ovnlab": 2, "api": 3, "backends": 3, "metadata": 3, "server": 4,
          "cli": 5}


def modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        rel = p.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if "migrations" in parts:
            continue
        out[".".join(parts)] = p
    return out


def imports(name: str, path: Path) -> list[tuple[str, ast.AST]]:
    tree = ast.parse(path.read_text())
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("floatip"):
                found.append((mod, node))
                found += [(f"{mod}.{a.name}", node) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node) for a in node.names if a.name.startswith("floatip")]
    return found


def layer(mod: str) -> int:
    parts = mod.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else -1


def test_layers_import_only_downwards():
    mods = modules()
    wrong = []
    for name, path in mods.items():
        for target, _ in imports(name, path):
            if target not in mods or name.split(".")[:2] == target.split(".")[:2]:
                continue
            if layer(target) > layer(name):
                wrong.append(f"{name} -> {target}")
    assert not wrong, "upward imports: " + ", ".join(sorted(set(wrong)))


def test_no_import_cycles():
    mods = modules()
    graph = {n: {t for t, _ in imports(n, p) if t in mods and t != n} for n, p in mods.items()}
    # a package's __init__ importing its own modules is how packages work, not a cycle
    for n in graph:
        graph[n] = {t for t in graph[n] if not (mods[n].name == "__init__.py"
                                                 and t.startswith(n + "."))}
    state: dict[str, int] = {}
    cycles = []

    def visit(n, stack):
        state[n] = 1
        for t in graph[n]:
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[n] = 2
    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert not cycles, "import cycles: " + "; ".join(cycles)


def test_imports_at_module_top():
    local = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                local.append(f"{name}:{node.lineno}")
    assert not local, "imports inside functions: " + ", ".join(local)


def test_modules_under_600_lines():
    big = {n: len(p.read_text().splitlines()) for n, p in modules().items()}
    assert {n: c for n, c in big.items() if c > 600} == {}
