"""The tool imports nothing of the demo: every module of racelab/, read with Python's own parser,
imports only the standard library, Django, its declared dependencies and itself. (Installed
alone into a new project, it also runs: tests/e2e/test_new_project.py.)"""

import ast
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from labserver.lab import PROJECT_DIR

pytestmark = pytest.mark.database_independent

PACKAGE = PROJECT_DIR / "racelab"
# Locust's own dependencies, imported by the locustfile and the worker that run inside Locust.
LOCUST_RUNTIME = {"gevent", "zmq"}


def declared_imports() -> set[str]:
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *sum(project["optional-dependencies"].values(), [])]
    # Each declared distribution imports under its own name, in lower case (Django as django).
    return {Requirement(requirement).name.lower() for requirement in requirements}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_racelab_imports_nothing_of_the_demo_project():
    allowed = set(sys.stdlib_module_names) | declared_imports() | LOCUST_RUNTIME | {"racelab"}
    outside = {
        str(path.relative_to(PROJECT_DIR)): sorted(imported_top_levels(path) - allowed)
        for path in sorted(PACKAGE.rglob("*.py"))
    }
    assert {path: names for path, names in outside.items() if names} == {}
    # The check reads real files: racelab has modules, and they import Django.
    assert len(outside) > 20 and "django" in imported_top_levels(PACKAGE / "middleware.py")
