"""Other modules use ``jhpo.population`` through its public names only.

Reads the code (ast) of jhpo/, tests/, benchmarks/ and examples/ and reports every
private name (leading underscore) of a ``jhpo.population`` module that is imported
or used outside that module; a test may look inside the module it mirrors.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "jhpo.population"


def _owner(path: Path) -> str:
    """The module whose private names ``path`` may use: itself, or the one a test mirrors."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[0] == "tests":
        return ".".join(["jhpo", *parts[1:-1], parts[-1].removeprefix("test_")])
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _in_package(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """``a.b.c`` as a module path, its first name resolved through the file's imports."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([aliases.get(node.id, node.id), *reversed(names)])


def private_uses(source: str, owner: str) -> list[str]:
    """"line: module.name" for each private ``jhpo.population`` name ``source`` uses outside ``owner``."""
    tree = ast.parse(source)
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if _in_package(node.module) and _private(alias.name) and node.module != owner:
                    found.append(f"{node.lineno}: {node.module}.{alias.name}")
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            aliases.update({alias.asname: alias.name for alias in node.names if alias.asname})
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            module = _dotted(node.value, aliases)
            if module is not None and _in_package(module) and module != owner:
                found.append(f"{node.lineno}: {module}.{node.attr}")
    return sorted(found)


def test_no_private_population_name_is_used_outside_its_module():
    folders = ("jhpo", "tests", "benchmarks", "examples")
    files = [path for folder in folders for path in sorted((REPO / folder).rglob("*.py"))]
    assert REPO / "jhpo" / "runs" / "population_loop.py" in files  # the scan sees the package's users
    found = [f"{path.relative_to(REPO)}:{use}" for path in files
             for use in private_uses(path.read_text(), _owner(path))]
    assert found == []


def test_the_scan_finds_private_uses():
    source = (
        "from jhpo import population as pop\n"
        "from jhpo.population.programs import _PROGRAMS\n"
        "import jhpo.population.train as training\n"
        "pop._task_identity\n"
        "training._pad_members\n"
        "jhpo.population.task._as_hparam_column\n"
        "training.__doc__\n"
    )
    assert private_uses(source, "jhpo.user") == [
        "2: jhpo.population.programs._PROGRAMS",
        "4: jhpo.population._task_identity",
        "5: jhpo.population.train._pad_members",
        "6: jhpo.population.task._as_hparam_column",
    ]
    assert private_uses(source, "jhpo.population.train") == [
        "2: jhpo.population.programs._PROGRAMS",
        "4: jhpo.population._task_identity",
        "6: jhpo.population.task._as_hparam_column",
    ]
