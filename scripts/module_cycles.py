#!/usr/bin/env python3
"""Fails when the top-level modules of a crate import each other in a cycle.

Each crate's `src/` is read; every file belongs to its top-level module (the first path
component under `src/`; `lib.rs` and `main.rs` are the crate root). An edge A -> B is a
`crate::B` path (or a `super::` path that resolves to B) inside A. The crate root only
re-exports, so edges to and from it are ignored. A child module using its parent's items is
structure, not a cycle: only edges between different top-level modules count.

Usage: scripts/module_cycles.py CRATE_DIR...
"""

import re
import sys
from pathlib import Path


def module_path(src: Path, file: Path) -> list[str]:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts in (["lib"], ["main"]):
        return []
    return parts


def edges(src: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for file in src.rglob("*.rs"):
        here = module_path(src, file)
        if not here:
            continue
        top = here[0]
        text = re.sub(r"//[^\n]*", "", file.read_text())
        targets = set()
        for m in re.finditer(r"\bcrate::([a-z_][a-z0-9_]*)", text):
            targets.add(m.group(1))
        for m in re.finditer(r"\b((?:super::)+)([a-z_][a-z0-9_]*)", text):
            ups = m.group(1).count("super::")
            # In a mod.rs, `super` is the parent of the directory's module.
            base = here[: len(here) - ups]
            target = (base + [m.group(2)])[0] if base else m.group(2)
            targets.add(target)
        for t in targets:
            is_module = (src / f"{t}.rs").exists() or (src / t / "mod.rs").exists()
            if t != top and is_module:
                out.setdefault(top, set()).add(t)
    return out


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def main() -> int:
    failed = False
    for crate in sys.argv[1:]:
        src = Path(crate) / "src"
        found = cycle(edges(src))
        if found:
            print(f"{crate}: modules import each other: {' -> '.join(found)}")
            failed = True
    if not failed:
        print(f"no module cycles in {len(sys.argv) - 1} crates")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
