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


@pytest.mark.parametrize(
    "name,size,params,macs",
    [
        ("alexnet", None, "60,965,224", "724,406,816"),
        ("alexnet_owt", "224", "61,100,840", "714,188,480"),
    ],
)
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
    assert (
        bad.stderr.strip().count("\n") == 0 and "valid names" in bad.stderr and "Traceback" not in bad.stderr
    )
    bad = run("summary", "alexnet", "--input-size", "100")
    assert bad.returncode == 2 and "227x227" in bad.stderr and "Traceback" not in bad.stderr


def test_every_train_option_has_a_help_line_with_its_default():
    import dataclasses

    from alexnet.cli import build_parser
    from alexnet.training.config import NOT_SETTINGS, TrainConfig
    from alexnet.training.options import HELP

    names = {f.name for f in dataclasses.fields(TrainConfig)} - set(NOT_SETTINGS)
    assert names == set(HELP), names ^ set(HELP)
    sub = build_parser()._subparsers._group_actions[0].choices
    for command in ("train", "finetune"):
        for action in sub[command]._actions:
            assert action.help, f"{command} {action.option_strings} has no help"
    text = sub["train"].format_help()
    assert "σ of the PCA colour noise (§4.1); 0 turns it off. Default: 0.1" in " ".join(text.split())
    assert "optimisation settings" in text and "{plateau,step,multistep,constant}" in text


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--train-layers", "fc8", "--all"], "argument --all: not allowed with argument --train-layers"),
        (
            ["--lr-mult", "fc8"],
            "argument --lr-mult: expected NAME=NUMBER with NUMBER in [0, 1000], e.g. fc8=10, got 'fc8'",
        ),
        (
            ["--lr-mult", "=10"],
            "argument --lr-mult: expected NAME=NUMBER with NUMBER in [0, 1000], e.g. fc8=10, got '=10'",
        ),
        (
            ["--lr-mult", "fc8=nan"],
            "argument --lr-mult: expected NAME=NUMBER with NUMBER in [0, 1000], e.g. fc8=10, got 'fc8=nan'",
        ),
        (
            ["--lr-mult", "fc8=-5"],
            "argument --lr-mult: expected NAME=NUMBER with NUMBER in [0, 1000], e.g. fc8=10, got 'fc8=-5'",
        ),
    ],
)
def test_finetune_layer_options_are_refused_where_they_are_read(capsys, argv, expected):
    assert main(["finetune", "--weights", "w.pt", "--data", "d", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"alexnet finetune: error: {expected}" in err


def test_every_command_module_registers_what_it_handles():
    """cli/: each command module adds its command(s) and a handler; alexnet --help lists them all."""
    from alexnet.cli import build_parser, commands

    names = [m.__name__.rpartition(".")[2] for m in commands()]
    assert names[:5] == ["models", "train", "finetune", "evaluate", "predict"]
    assert names[5:] == sorted(names[5:])
    sub = build_parser()._subparsers._group_actions[0].choices
    assert list(sub) == names  # one command per module, named as its file
    for name, parser in sub.items():
        leaves = (
            [parser]
            if parser.get_default("func")
            else [c for a in parser._subparsers._group_actions for c in a.choices.values()]
        )
        assert leaves and all(callable(c.get_default("func")) for c in leaves), name
