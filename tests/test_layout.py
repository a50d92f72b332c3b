"""The house rules a reader relies on: the module map (docs/layout.md) is the package, functions and
classes stay short enough to read in one sitting, the core needs neither files nor a terminal."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sparsecode"
#: The limits of issue #16: a function a reader takes in at once, a class read in one sitting.
MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 200


def _layout_modules() -> set[str]:
    """The ``sparsecode/`` entries of the module map, the first block of docs/layout.md."""
    layout = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    block = layout.split("```", 2)[1]
    package = block.split("sparsecode/", 1)[1].split("benchmarks/", 1)[0]
    return set(re.findall(r"^\s+(\w+\.py)\b", package, flags=re.M))


def test_the_readme_layout_lists_every_module_and_no_other():
    modules = {p.name for p in PACKAGE.glob("*.py")} - {"__init__.py", "__main__.py"}
    assert _layout_modules() == modules


def _long_definitions() -> list[str]:
    found = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                lines = node.end_lineno - node.lineno + 1
                limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
                if lines > limit:
                    found.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_over_60_lines_and_no_class_over_200():
    assert _long_definitions() == []


def test_the_core_imports_neither_files_formats_nor_the_terminal():
    code = ("import sys; import sparsecode.topk, sparsecode.model, sparsecode.objectives; "
            "print(sorted(m for m in ('h5py', 'rich', 'typer', 'sparsecode.cli', 'sparsecode.embeddings', "
            "'sparsecode.codes') if m in sys.modules))")
    # Imported on their own, not through sparsecode/__init__.py (which loads the whole library).
    code = code.replace("import sparsecode.topk", "import importlib.util, types; "
                        "pkg = types.ModuleType('sparsecode'); pkg.__path__ = [%r]; sys.modules['sparsecode'] = pkg; "
                        "import sparsecode.topk" % str(PACKAGE))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
