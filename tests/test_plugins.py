"""Outside methods: a package installed beside sslbench adds a method through the `sslbench.methods` entry point.

The plugin here is the README's example file (examples/entropy_min.py), installed as a distribution on sys.path
with an entry point, exactly as `pip install` of a plugin package would leave it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sslbench.benchmark.cli import main
from sslbench.methods import registry

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "entropy_min.py"


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(EXAMPLE, site / "my_ssl_plugin.py")
    dist = site / "my_ssl_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-ssl-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sslbench.methods]\nentmin = my_ssl_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_discovered", False)  # discover again, now with the plugin on sys.path
    yield
    registry.unregister("entmin")
    monkeypatch.setattr(registry, "_discovered", True)


def test_plugin_method_listed_and_trains(installed_plugin, tiny_data, tmp_path):
    runner = CliRunner()
    listing = runner.invoke(main, ["methods"])
    assert listing.exit_code == 0, listing.output
    assert re.search(r"^entmin\s+-\s+consistency", listing.output, re.M), listing.output

    out = tmp_path / "runs"
    result = runner.invoke(
        main,
        [
            "train",
            "--method",
            "entmin",
            "--split",
            "4/4",
            "--seed",
            "1",
            "--preset",
            "smoke",
            "--data",
            str(tiny_data),
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["dice"] <= 1.0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["method"] == "entmin" and config["entmin"] == {"w": 0.1}


def test_readme_example_is_the_tested_file():
    """The README walks through examples/entropy_min.py; the code block must be that file, verbatim."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert EXAMPLE.read_text() in blocks


@pytest.fixture(scope="module")
def installed_copy(tmp_path_factory):
    """sslbench installed (not editable) into a folder of its own: what `pip install .` leaves on a machine."""
    target = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*cmd, "--target", str(target), str(ROOT)], check=True, capture_output=True, timeout=300)
    return target


def _bench(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    code = "import sys; from sslbench.benchmark.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


@pytest.mark.slow
def test_readme_example_dropped_into_the_algorithms_folder(installed_copy, tiny_data, tmp_path):
    """README "Adding a method", the in-repo way: the file copied into methods/algorithms/ is a method."""
    algorithms = installed_copy / "sslbench" / "methods" / "algorithms"
    shutil.copy(EXAMPLE, algorithms / "entropy_min.py")
    try:
        listing = _bench(installed_copy, "methods", cwd=tmp_path)
        assert listing.returncode == 0, listing.stderr
        assert re.search(r"^entmin\s+-\s+consistency", listing.stdout, re.M), listing.stdout
        from sslbench.methods.registry import list_methods

        for info in list_methods():  # every built-in method made it into the installed copy
            assert re.search(rf"^{info.name}\s", listing.stdout, re.M), (info.name, listing.stdout)
        where = _bench(installed_copy, "--version", cwd=tmp_path)  # the copy answers, not the checkout
        assert where.returncode == 0, where.stderr
        run = _bench(
            installed_copy,
            *("train", "--method", "entmin", "--split", "4/4", "--seed", "1", "--preset", "smoke"),
            *("--data", str(tiny_data), "--out", str(tmp_path / "runs"), "--quiet"),
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr
        (run_dir,) = (tmp_path / "runs").iterdir()
        config = json.loads((run_dir / "config.json").read_text())
        assert (
            config["method"] == "entmin" and json.loads((run_dir / "metrics.json").read_text())["dice"] >= 0.0
        )
    finally:
        (algorithms / "entropy_min.py").unlink()


@pytest.mark.slow
def test_the_installed_copy_is_what_the_drop_in_test_runs(installed_copy, tmp_path):
    code = "import sslbench.methods as m; print(m.__file__)"
    env = {**os.environ, "PYTHONPATH": str(installed_copy)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert Path(out.stdout.strip()).is_relative_to(installed_copy), out.stdout
