"""The documentation builds with warnings as errors, and documents every public name."""

import ast
import inspect
import re
from pathlib import Path

import pytest
from sphinx.cmd.build import build_main

import jhpo

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    """The HTML site, built once by ``sphinx-build -W`` (any warning fails the build)."""
    out = tmp_path_factory.mktemp("site")
    status = build_main(["-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)])
    assert status == 0, "sphinx-build -W failed; its warnings are printed above"
    return out


def documented_names(page: Path) -> set[str]:
    """The objects a built page describes, by their full dotted names."""
    return set(re.findall(r'<dt class="sig sig-object py" id="([\w.]+)"', page.read_text()))


def test_the_site_builds_and_the_api_page_documents_tune_and_optimizer(built_site):
    api = built_site / "api.html"
    names = documented_names(api)
    assert {"jhpo.tune", "jhpo.Optimizer", "jhpo.Optimizer.ask",
            "jhpo.Result.pareto_front"} <= names
    text = api.read_text()
    assert "Minimise (or maximise)" in text  # tune's docstring made it onto the page


def test_every_public_name_of_the_package_is_on_the_api_page(built_site):
    page = built_site / "api.html"
    names = documented_names(page)
    modules = set(re.findall(r'id="module-([\w.]+)"', page.read_text()))
    public = [name for name in jhpo.__all__ if not name.startswith("__")]
    missing = sorted(name for name in public
                     if f"jhpo.{name}" not in (modules if inspect.ismodule(getattr(jhpo, name))
                                               else names))
    assert not missing, f"add these names of jhpo.__all__ to docs/api.md: {missing}"


def test_every_concept_page_is_built(built_site):
    pages = {path.stem for path in DOCS.glob("*.md")}
    assert {"index", "getting_started", "spaces", "searchers", "schedulers", "populations",
            "objectives", "experiments", "cli", "api"} <= pages
    for page in pages:
        assert (built_site / f"{page}.html").exists(), page


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda path: path.name)
def test_python_snippets_are_valid_python(page):
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    for index, block in enumerate(blocks):
        ast.parse(block, filename=f"{page.name}, python block {index}")


def test_the_readme_layout_lists_every_module_that_holds_code():
    """Each module of jhpo/ has its line in the README's Layout table (an ``__init__.py``
    that only re-exports needs none), and no line names a module that is gone."""
    root = DOCS.parent
    layout = (root / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(jhpo/[\w/]+\.py)` \|", layout, re.M))
    modules = set()
    for path in (root / "jhpo").rglob("*.py"):
        tree = ast.parse(path.read_text())
        holds_code = any(isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign))
                         and not (isinstance(node, ast.Assign)
                                  and [getattr(t, "id", None) for t in node.targets] == ["__all__"])
                         for node in tree.body)
        if path.name != "__init__.py" or holds_code:
            modules.add(str(path.relative_to(root)))
    assert not modules - listed, f"add a line to the README's Layout: {sorted(modules - listed)}"
    gone = sorted(listed - modules)
    assert not gone, f"the README's Layout names modules that do not exist: {gone}"
