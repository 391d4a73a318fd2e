"""The package as people install it: the sdist carries what its tests need, the wheel carries the
package data, the metadata says licence, version and citation once.

Builds both from a clean copy of the sources, as `python -m build` does (the wheel from the
unpacked sdist), without an isolated environment: a few seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import alexnet

ROOT = Path(__file__).resolve().parents[1]
CACHES = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}


def files_under(folder: Path) -> list[str]:
    """The files of a source folder, relative to the root, less caches and bytecode."""
    return sorted(
        str(p.relative_to(ROOT))
        for p in folder.rglob("*")
        if p.is_file() and not CACHES & set(p.parts) and p.suffix != ".pyc"
    )


def clean_copy(dst: Path) -> Path:
    """What a fresh clone holds for the build, without a previous build's src/*.egg-info (whose
    SOURCES.txt setuptools would add to the sdist, hiding a MANIFEST.in that misses files)."""
    for name in (
        "pyproject.toml",
        "MANIFEST.in",
        "README.md",
        "LICENSE",
        "CITATION.cff",
        ".ci",
        "src",
        "tests",
        "docs",
        "benchmarks",
    ):
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, dst / name, ignore=shutil.ignore_patterns("*.egg-info", "*.pyc", *CACHES)
            )
        elif (ROOT / name).exists():
            shutil.copy2(ROOT / name, dst / name)
    return dst


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    pytest.importorskip("build", reason="the `build` package is not installed (it is in the dev extra)")
    out, src = tmp_path_factory.mktemp("dist"), clean_copy(tmp_path_factory.mktemp("src"))
    r = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (sdist,), (wheel,) = out.glob("*.tar.gz"), out.glob("*.whl")
    return sdist, wheel, r.stdout + r.stderr


def test_sdist_has_what_its_tests_need(dists):
    sdist, _, log = dists
    top = f"alexnet-{alexnet.__version__}/"
    with tarfile.open(sdist) as tf:
        names = {n[len(top) :] for n in tf.getnames() if n.startswith(top)}
        pkg_info = tf.extractfile(top + "PKG-INFO").read().decode()
    needed = [
        "LICENSE",
        "CITATION.cff",
        "README.md",
        "pyproject.toml",
        "MANIFEST.in",
        "tests/conftest.py",
        "docs/paper.md",
        "docs/cli.md",
        "benchmarks/gpu.py",
        "src/alexnet/nn/lrn_kernel.c",
        "src/alexnet/imagenet_synsets.txt",
    ]
    for folder in ("tests", "docs", "benchmarks", "src/alexnet"):
        needed += files_under(ROOT / folder)
    missing = sorted(set(needed) - names)
    assert not missing, f"not in the sdist (add them to MANIFEST.in or package-data): {missing}"
    assert not [n for n in names if CACHES & set(n.split("/")) or n.endswith(".pyc")]
    # one version, read from alexnet/__init__.py; the licence as an SPDX expression (PEP 639)
    assert f"\nVersion: {alexnet.__version__}\n" in pkg_info
    assert "\nLicense-Expression: MIT\n" in pkg_info and "\nLicense-File: LICENSE\n" in pkg_info
    assert "Classifier: License ::" not in pkg_info  # superseded by the expression (setuptools refuses both)
    assert "deprecated" not in log.lower(), log


def test_wheel_has_the_package_data(dists):
    _, wheel, _ = dists
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = zf.read(f"alexnet-{alexnet.__version__}.dist-info/METADATA").decode()
    src = ROOT / "src"
    data = [
        str(p.relative_to(src))
        for p in (src / "alexnet").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and not CACHES & set(p.parts)
    ]
    assert "alexnet/nn/lrn_kernel.c" in data and "alexnet/imagenet_synsets.txt" in data
    missing = sorted(set(data) - names)
    assert not missing, f"package data not in the wheel (add it to package-data in pyproject.toml): {missing}"
    modules = {str(p.relative_to(src)) for p in (src / "alexnet").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    assert not [n for n in names if n.startswith(("tests/", "docs/", "benchmarks/"))]
    assert f"alexnet-{alexnet.__version__}.dist-info/licenses/LICENSE" in names
    assert "\nRequires-Dist: torch>=2.4\n" in meta


def test_version_is_written_once():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'version = { attr = "alexnet.__version__" }' in text
    cff = (ROOT / "CITATION.cff").read_text()
    assert f"\nversion: {alexnet.__version__}\n" in cff, "CITATION.cff's version is not alexnet.__version__"
    r = subprocess.run([sys.executable, "-m", "alexnet", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"alexnet {alexnet.__version__}"
