"""The dependency rule, checked statically: ``pipelines/ → corpusgen/ ← trainer/``.

``corpusgen/`` (the algorithm and format) imports neither Beam nor torch, so it is fast to test and
reusable anywhere; only its command line (``corpusgen/cli.py``) may reach everything. ``trainer/`` never
imports Beam, ``pipelines/`` never imports torch. A package that may not import Beam may not import
``pipelines`` either (it imports Beam), and one that may not import torch may not import ``trainer``.

Every ``.py`` file is parsed with ``ast`` (nothing is imported or executed): ``import`` and
``from … import`` anywhere in a file, including inside functions, relative imports resolved, and
``importlib.import_module("…")`` / ``__import__("…")`` with a literal name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> (forbidden top-level names, files of the package exempt from the rule)
RULES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "corpusgen": (frozenset({"apache_beam", "torch", "pipelines", "trainer"}), frozenset({"corpusgen/cli.py"})),
    "trainer": (frozenset({"apache_beam", "pipelines"}), frozenset()),
    "pipelines": (frozenset({"torch", "trainer"}), frozenset()),
}


def imported_modules(source: str, package: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """(line, dotted name) of every module the source imports; ``package`` resolves relative imports."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - (node.level - 1)])
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # one entry per name: `from safetensors import torch` imports torch as `import safetensors.torch` does
            found += [(node.lineno, module if alias.name == "*" else f"{module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            arg = node.args[0]
            if name in ("import_module", "__import__") and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return sorted(found, key=lambda item: item[0])  # ast.walk goes breadth-first; report in file order


# Found anywhere in a dotted name: bridges such as safetensors.torch import torch themselves.
FRAMEWORKS = frozenset({"apache_beam", "torch"})


def violations(source: str, path: str, forbidden: frozenset[str]) -> list[str]:
    """``path:line: imports NAME`` for each import of a forbidden module: a forbidden top-level name, or
    a framework anywhere in the dotted name."""
    package = Path(path).parts[:-1]  # of corpusgen/a/b.py and of corpusgen/a/__init__.py alike: corpusgen.a
    out = []
    for line, module in imported_modules(source, package):
        top, *rest = module.split(".")
        hit = sorted(({top} | (set(rest) & FRAMEWORKS)) & forbidden)
        if hit:
            out.append(f"{path}:{line}: imports {module} ({', '.join(hit)} is not allowed here)")
    return out


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_respects_the_dependency_rule(package):
    forbidden, exempt = RULES[package]
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    found = []
    for file in files:
        rel = file.relative_to(ROOT).as_posix()
        if rel not in exempt:
            found += violations(file.read_text(encoding="utf-8"), rel, forbidden)
    assert not found, f"{package}/ may not import {', '.join(sorted(forbidden))}:\n" + "\n".join(found)


def test_the_exempt_command_line_exists():
    # An exemption for a file that moved would silently stop meaning anything.
    for _, exempt in RULES.values():
        for rel in exempt:
            assert (ROOT / rel).is_file(), rel


# --- the checker itself ------------------------------------------------------------------

BEAM_TORCH = frozenset({"apache_beam", "torch", "pipelines"})


def test_checker_finds_every_kind_of_import_with_its_line():
    source = (
        "import os\n"  # 1
        "import torch.nn as nn\n"  # 2
        "from apache_beam.io import filesystems\n"  # 3
        "def f():\n"  # 4
        "    import apache_beam as beam\n"  # 5
        "    from safetensors import torch\n"  # 6
        "class C:\n"  # 7
        "    def g(self):\n"  # 8
        "        if True:\n"  # 9
        "            from pipelines.build import run_build\n"  # 10
        "importlib.import_module('torch')\n"  # 11
        "__import__('apache_beam.io')\n"  # 12
    )
    assert violations(source, "corpusgen/sub/mod.py", BEAM_TORCH) == [
        "corpusgen/sub/mod.py:2: imports torch.nn (torch is not allowed here)",
        "corpusgen/sub/mod.py:3: imports apache_beam.io.filesystems (apache_beam is not allowed here)",
        "corpusgen/sub/mod.py:5: imports apache_beam (apache_beam is not allowed here)",
        "corpusgen/sub/mod.py:6: imports safetensors.torch (torch is not allowed here)",
        "corpusgen/sub/mod.py:10: imports pipelines.build.run_build (pipelines is not allowed here)",
        "corpusgen/sub/mod.py:11: imports torch (torch is not allowed here)",
        "corpusgen/sub/mod.py:12: imports apache_beam.io (apache_beam is not allowed here)",
    ]


def test_checker_ignores_names_that_only_look_alike():
    source = (
        "import torchvision_like\n"
        "from corpusgen import torch_free\n"
        "x = 'import torch'\n"
        "# import apache_beam\n"
        "from . import shards\n"
        "from .torchless import y\n"
        "from .pipelines import z\n"  # corpusgen.pipelines, not the pipelines package
    )
    assert violations(source, "corpusgen/mod.py", BEAM_TORCH) == []


def test_checker_resolves_relative_imports_against_the_package():
    source = "from . import a\nfrom .. import b, c\nfrom .d import *\nfrom ..e import f\n"
    assert imported_modules(source, ("corpusgen", "sub")) == [
        (1, "corpusgen.sub.a"),
        (2, "corpusgen.b"),
        (2, "corpusgen.c"),
        (3, "corpusgen.sub.d"),
        (4, "corpusgen.e.f"),
    ]
