"""Draw the product's dependency picture from the code: which layer imports which (and how often),
the import circles, the layer rules broken, and the modules over the length limit.

    .venv/bin/python scripts/deps.py            # the picture of widget/
    .venv/bin/python scripts/deps.py --modules  # also every module-to-module import across layers

The same reading (tests/support/imports.py) backs tests/unit/test_layers.py.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.imports import Graph, layer, read
from tests.unit.test_layers import LONG, broken_rules

ORDER = ["web", "jobs", "app", "services", "crm", "models", "domain", "config"]


def picture(graph: Graph, modules: bool) -> str:
    out: list[str] = []
    counts: Counter[tuple[str, str]] = Counter()
    for imp in graph.imports:
        a, b = layer(imp.source), layer(imp.target)
        if a != b:
            counts[(a, b)] += 1
    sizes = Counter(layer(m) for m in graph.modules)
    lines = Counter()
    for m in graph.modules:
        lines[layer(m)] += graph.lines(m)
    out.append("Layers (modules, lines) and what each imports (imports across layers):")
    for a in ORDER:
        if a not in sizes:
            continue
        targets = ", ".join(f"{b} {counts[(a, b)]}" for b in ORDER if counts[(a, b)])
        out.append(f"  {a:<9} ({sizes[a]:>3}, {lines[a]:>5})  -> {targets or 'nothing of ours'}")
    circles = graph.circles()
    out.append(f"\nImport circles: {len(circles)}")
    for circle in circles:
        out.append(f"  {len(circle)} modules: {' '.join(circle)}")
    broken = broken_rules(graph)
    out.append(f"\nLayer rules broken: {len(broken)}")
    for item in broken:
        out.append(f"  {item}")
    long = sorted(((graph.lines(m), m) for m in graph.modules if graph.lines(m) > LONG), reverse=True)
    out.append(f"\nModules over {LONG} lines: {len(long)}")
    for n, m in long:
        out.append(f"  {n:>5} {m}")
    if modules:
        out.append("\nImports across layers:")
        for imp in sorted(graph.imports, key=lambda i: (i.source, i.target)):
            if layer(imp.source) != layer(imp.target):
                out.append(f"  {imp.source}:{imp.line} -> {imp.target}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", action="store_true", help="list every import across layers")
    args = parser.parse_args()
    print(picture(read(["widget"]), args.modules))


if __name__ == "__main__":
    main()
