"""The shape of the code base: one-way imports, a light registry and CLI, and discovery without a list."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"datasets": "sslbench.datasets", "methods": "sslbench.methods", "benchmark": "sslbench.benchmark"}
HEAVY = ("torch", "scipy", "h5py", "skimage")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "folder,forbidden",
    [("datasets", ("sslbench.methods", "sslbench.benchmark")), ("methods", ("sslbench.benchmark",))],
)
def test_imports_flow_one_way(folder, forbidden):
    """datasets <- methods <- benchmark: no module of datasets imports methods or benchmark, and so on."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.startswith(forbidden))
        for path in (ROOT / folder).rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_import_direction_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from sslbench.benchmark.config import build_config\n")
    assert "sslbench.benchmark.config" in imported_modules(bad)


def _fresh_python(code: str) -> dict:
    """Run `code` in a new interpreter; it prints a JSON object as its last line."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_methods_package_loads_no_method_and_no_heavy_library():
    loaded = _fresh_python(
        "import json, sys; import sslbench.methods; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith('sslbench') or m in {HEAVY!r})))"
    )
    assert not [m for m in loaded if m.startswith("sslbench.methods.algorithms.")], loaded
    assert not [m for m in loaded if m in HEAVY], loaded


def test_bench_help_imports_no_torch():
    loaded = _fresh_python(
        "import json, sys\n"
        "from sslbench.benchmark.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sslbench'))))"
    )
    assert "torch" not in loaded
    assert not [m for m in loaded if m.startswith("sslbench.methods.algorithms.")]


def test_every_algorithm_module_is_discovered_and_registers_a_method():
    from sslbench.methods.registry import list_methods

    sources = {m.cls.__module__ for m in list_methods() if m.source == "builtin"}
    folder = ROOT / "methods" / "algorithms"
    modules = {
        f"sslbench.methods.algorithms.{p.stem if p.is_file() else p.name}"
        for p in folder.iterdir()
        if not p.name.startswith("_") and (p.suffix == ".py" or (p / "__init__.py").is_file())
    }
    assert modules == sources


def test_the_registry_holds_the_metadata_tables_need():
    from sslbench.methods.registry import baseline_method, display_name, list_methods, method_rank

    assert baseline_method().name == "sup"
    assert display_name("uamt") == "UA-MT" and display_name("not-a-method") == "not-a-method"
    names = [m.name for m in list_methods()]
    assert names[:7] == ["sup", "mt", "sassnet", "dct", "uamt", "urpc", "lrep"]  # the seed paper's row order
    assert method_rank("a-removed-plugin") > method_rank("lrep")


def test_every_package_folder_is_installed():
    """pyproject lists packages one by one (the namespace mapping needs it): a new sub-package must be listed, or
    a non-editable install silently lacks it (a method's sub-package would vanish from `bench methods`)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(project["packages"])
    found = {
        ".".join([PACKAGES[init.relative_to(ROOT).parts[0]], *init.relative_to(ROOT).parts[1:-1]])
        for folder in PACKAGES
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert found == listed
