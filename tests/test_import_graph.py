"""The house keeps its shape: no module imports a module that imports it back, directly or through others.

The layers between apps are import-linter contracts (pyproject.toml, run by ``make lint``); this walks every
import between the project's modules (those inside functions too) and fails on any circle."""

import grimp

PACKAGES = ("common", "accounts", "tenants", "usage", "billing", "disputes", "portal", "demo", "config")


def test_no_module_imports_a_module_that_imports_it_back():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    circles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                circles.append(" -> ".join((importer, *back)))
    assert circles == []


def test_a_circle_would_be_found(tmp_path, monkeypatch):
    """The walk above sees a circle when there is one (two modules importing each other)."""
    package = tmp_path / "circle_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from circle_pkg import b\n")
    (package / "b.py").write_text("from circle_pkg import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("circle_pkg", cache_dir=None)
    assert graph.find_shortest_chain(importer="circle_pkg.b", imported="circle_pkg.a") == (
        "circle_pkg.b",
        "circle_pkg.a",
    )
    assert graph.find_shortest_chain(importer="circle_pkg.a", imported="circle_pkg.b") == (
        "circle_pkg.a",
        "circle_pkg.b",
    )
