"""The product's layers, read from its imports (tests/support/imports.py; every import counts, inside
functions and TYPE_CHECKING blocks too). ``scripts/deps.py`` prints the same picture.

- ``domain`` imports nothing of ours but itself;
- ``crm`` (the CRM adapters) imports only the domain, config and itself;
- ``services`` imports neither ``web`` nor ``jobs``;
- ``web`` imports neither ``models`` nor ``jobs``: it asks services;
- no import circle among product modules;
- modules stay under LONG lines, with at most two named exceptions.
"""

from __future__ import annotations

from tests.support.imports import ROOT, Graph, layer, read

LONG = 400

# Modules allowed over LONG lines, each with why (at most two).
LONG_ALLOWED: dict[str, str] = {}

ALLOWED = {
    "domain": {"domain"},
    "crm": {"crm", "domain", "config"},
}
FORBIDDEN = {
    "services": {"web", "jobs"},
    "web": {"models", "jobs"},
}


def broken_rules(graph: Graph) -> list[str]:
    broken = []
    for imp in graph.imports:
        a, b = layer(imp.source), layer(imp.target)
        if a in ALLOWED and b not in ALLOWED[a]:
            broken.append(f"{a} imports {b}: {imp.source}:{imp.line} -> {imp.target}")
        if b in FORBIDDEN.get(a, set()):
            broken.append(f"{a} imports {b}: {imp.source}:{imp.line} -> {imp.target}")
    return sorted(set(broken))


def graph() -> Graph:
    return read(["widget"])


def test_the_reader_sees_imports_inside_functions_and_relative_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pkg = tmp_path / "p"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from p.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("import p.a\n")
    g = read(["p"], root=tmp_path)
    pairs = {(i.source, i.target) for i in g.imports}
    assert pairs == {("p.a", "p.sub.b"), ("p.sub", "p.sub.b"), ("p.sub.b", "p.a")}
    assert g.circles() == [["p.a", "p.sub.b"]]


def test_the_sandboxes_live_outside_the_product_package() -> None:
    modules = graph().modules
    assert "widget.embedded" in modules  # the reading sees the product package
    assert not any(m.startswith("widget.sandbox") for m in modules)
    assert (ROOT / "sandbox" / "runner.py").exists()  # still there, beside it, for python server.py


def test_the_crm_adapters_are_handed_what_they_need() -> None:
    """``crm`` reaches neither models nor services: tokens, accounts and earlier attempts come in
    through ``widget.services.accounts.crm_clients`` and the outbox."""
    crm = [line for line in broken_rules(graph()) if line.startswith("crm imports")]
    assert crm == []


def test_no_layer_reaches_where_it_must_not() -> None:
    assert broken_rules(graph()) == []


def test_no_import_circle_among_product_modules() -> None:
    assert graph().circles() == []


def test_modules_stay_short() -> None:
    assert len(LONG_ALLOWED) <= 2
    g = graph()
    long = {m: g.lines(m) for m in g.modules if g.lines(m) > LONG and m not in LONG_ALLOWED}
    assert long == {}


def test_the_rules_catch_a_layer_reaching_up(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The rules read a made-up product with one import of each forbidden kind."""
    files = {
        "widget/__init__.py": "",
        "widget/domain/__init__.py": "",
        "widget/domain/rules.py": "def f():\n    from widget.services import use\n",
        "widget/crm/__init__.py": "",
        "widget/crm/client.py": "from widget.models import tables\n",
        "widget/services/__init__.py": "",
        "widget/services/use.py": "from widget.jobs import tasks\n",
        "widget/web/__init__.py": "",
        "widget/web/routes.py": "import widget.models.tables\n",
        "widget/models/__init__.py": "",
        "widget/models/tables.py": "",
        "widget/jobs/__init__.py": "",
        "widget/jobs/tasks.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    broken = broken_rules(read(["widget"], root=tmp_path))
    assert [line.split(":")[0] for line in broken] == [
        "crm imports models",
        "domain imports services",
        "services imports jobs",
        "web imports models",
    ]
