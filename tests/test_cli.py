"""The console script, as a user runs it."""
import subprocess
import sys

import pytest

import alexnet
from alexnet.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "alexnet", *args], capture_output=True, text=True)


def test_models_lists_every_name(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == alexnet.list_models()
    assert all(len(line.split(None, 1)[1]) > 20 for line in out)  # each has a description


@pytest.mark.parametrize("name,size,params,macs", [
    ("alexnet", None, "60,965,224", "724,406,816"),
    ("alexnet_owt", "224", "61,100,840", "714,188,480"),
])
def test_summary_totals(capsys, name, size, params, macs):
    argv = ["summary", name] + (["--input-size", size] if size else [])
    assert main(argv) == 0
    total = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert total == ["total", params, macs]


def test_python_dash_m_and_clear_errors():
    ok = run("summary", "cifar_convnet")
    assert ok.returncode == 0 and "features.conv1" in ok.stdout
    bad = run("summary", "alexnett")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "valid names" in bad.stderr and "Traceback" not in bad.stderr
    bad = run("summary", "alexnet", "--input-size", "100")
    assert bad.returncode == 2 and "227x227" in bad.stderr and "Traceback" not in bad.stderr
