"""The layout is the architecture: the run pipeline (common/*.py) and the techniques know no task and no
tool; a task knows no tool. Read from the import statements (ast), so a lazy import inside a function
counts as much as one at the top."""
import ast

import pytest

from conftest import ROOT

COMMON = ROOT / "common"
# package -> the packages its modules must not import
FORBIDDEN = {"core": ("common.tasks", "common.tools"), "techniques": ("common.tasks", "common.tools"),
             "tasks": ("common.tools",)}


def imported_modules(path):
    """Every module an `import` or `from ... import` in the file names, as dotted paths; `from common import x`
    yields common.x too, so importing a task module by name is caught."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules_of(package):
    folder = COMMON if package == "core" else COMMON / package
    return sorted(folder.glob("*.py"))


def violations(path, forbidden):
    return sorted(name for name in imported_modules(path)
                  if any(name == f or name.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_a_layer_it_must_not_know(package):
    modules = modules_of(package)
    assert modules, f"no modules found for {package}"
    bad = {path.relative_to(ROOT).as_posix(): violations(path, FORBIDDEN[package]) for path in modules}
    bad = {module: names for module, names in bad.items() if names}
    assert not bad, f"{package} imports what it must not know: {bad}"


def test_the_check_catches_a_task_import(tmp_path):
    """The checker itself: a core module importing a task module, plainly or lazily, is reported."""
    module = tmp_path / "leaky.py"
    module.write_text("from common import artifacts\n\n"
                      "def f():\n    from common.tasks.squad import normalize_answer\n    import common.tools.predict\n")
    assert violations(module, FORBIDDEN["core"]) == ["common.tasks.squad", "common.tasks.squad.normalize_answer",
                                                     "common.tools.predict"]
    module.write_text("from common.tasks import tagging\n")
    assert violations(module, FORBIDDEN["core"]) == ["common.tasks", "common.tasks.tagging"]


def test_every_module_sits_in_a_known_place():
    """A new package goes into the run pipeline, tasks/, techniques/ or tools/ (metric_modules/ holds the
    evaluate modules): no fifth kind appears unnoticed."""
    packages = {p.name for p in COMMON.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert packages == {"tasks", "techniques", "tools", "metric_modules"}
