"""docs/cli.md is the CLI's own help, and every option of every command has a help line.

docs/cli.md holds `alexnet --help` and every subcommand's `--help`, formatted at a fixed width
(argparse reads the terminal's otherwise), generated from the parsers so that it cannot drift:

    python tests/test_cli_doc.py            # compare docs/cli.md with the CLI, print the differences
    python tests/test_cli_doc.py --update   # rewrite docs/cli.md from the CLI

The comparison is of words, not layout: whitespace is collapsed and "optional arguments:"
(Python < 3.10) read as "options:", so the line wrapping and column alignment of other Python
versions' argparse do not count as drift; any changed word, option, default or example does.
(Measured: this CLI's help, rebuilt in Python 3.10, 3.12 and 3.13, is word for word 3.11's; the
raw text differs only in 3.13, in one command's column alignment.)
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
WIDTH = 100
VALUE_ACTIONS = (argparse._StoreAction, argparse._AppendAction)


def parsers(p: argparse.ArgumentParser | None = None, path: tuple = ()):
    """(command path, parser, one-line help) of every parser of the CLI, depth first."""
    if p is None:
        from alexnet.cli import build_parser

        p = build_parser()
    out = [(path, p)]
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                out += parsers(child, path + (name,))
    return out


def one_liners(p: argparse.ArgumentParser) -> dict[str, str]:
    return {
        a.dest: a.help
        for s in p._actions
        if isinstance(s, argparse._SubParsersAction)
        for a in s._choices_actions
    }


def help_text(p: argparse.ArgumentParser) -> str:
    """`--help` as printed on a terminal WIDTH columns wide, whatever this one is."""
    cls = p.formatter_class
    p.formatter_class = functools.partial(cls, width=WIDTH)
    try:
        return p.format_help()
    finally:
        p.formatter_class = cls


def title(path: tuple) -> str:
    return " ".join(("alexnet",) + path)


def render() -> str:
    """docs/cli.md from the parsers."""
    every = parsers()
    lines = [
        "# Command-line reference",
        "",
        f"Every `alexnet` command's `--help`, as it prints at {WIDTH} columns. Generated from the CLI by",
        "`python tests/test_cli_doc.py --update`; the test suite checks that this page matches it.",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    helps = {}
    for path, p in every:
        helps.update({path + (k,): v for k, v in one_liners(p).items()})
    for path, _ in every[1:]:
        anchor = title(path).replace(" ", "-")
        lines.append(f"| [`{title(path)}`](#{anchor}) | {helps[path].replace('|', '/')} |")
    for path, p in every:
        lines += ["", f"## {title(path)}", "", "```text", help_text(p).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def sections(text: str) -> dict[str, str]:
    """{heading: body}, bodies normalised to their words (see the module docstring)."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    out = {"(top)": parts[0]}
    out.update(zip(parts[1::2], parts[2::2]))
    return {k: " ".join(v.replace("optional arguments:", "options:").split()) for k, v in out.items()}


def drift(committed: str, current: str) -> list[str]:
    """What differs between the committed page and the CLI, one line per command."""
    old, new = sections(committed), sections(current)
    out = [f"{k}: missing from docs/cli.md" for k in new if k not in old]
    out += [f"{k}: in docs/cli.md but no longer a command" for k in old if k not in new]
    for k in new.keys() & old.keys():
        if old[k] != new[k]:
            a, b = old[k].split(), new[k].split()
            i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            out.append(
                f"{k}: docs/cli.md says ...{' '.join(a[max(0, i - 6) : i + 6])}... but the CLI "
                f"...{' '.join(b[max(0, i - 6) : i + 6])}..."
            )
    return sorted(out)


def test_docs_cli_md_is_the_clis_help():
    bad = drift(DOC.read_text(), render())
    assert not bad, (
        "docs/cli.md differs from the CLI's --help (python tests/test_cli_doc.py --update "
        "rewrites it):\n" + "\n".join(bad)
    )


def test_drift_ignores_layout_but_not_words():
    page = render()
    assert not drift(page, page)
    relaid = page.replace("options:", "optional arguments:").replace("  --crops", "\n    --crops")
    assert not drift(page, relaid)
    assert drift(page, page.replace("Default: center", "Default: 10", 1))
    assert drift(page, page.replace("\n## alexnet stats\n", "\n## alexnet statistics\n"))


def test_every_option_of_every_command_has_help_a_default_and_an_example():
    every = parsers()
    assert {" ".join(path) for path, _ in every} >= {
        "models",
        "train",
        "finetune",
        "evaluate",
        "predict",
        "convert",
        "weights",
        "features",
        "retrieve",
        "codes",
        "codes train",
        "visualize",
        "visualize filters",
        "visualize curves",
        "visualize predictions",
        "visualize neighbors",
        "report",
        "experiment",
        "summary",
        "bench",
        "bench model",
        "bench data",
        "stats",
        "prepare",
    }
    root = every[0][1]
    for path, p in every:
        where = title(path)
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            name = "/".join(a.option_strings) or a.dest
            assert a.help and a.help.strip(), f"{where} {name}: no help"
            if isinstance(a, VALUE_ACTIONS) and a.option_strings and not a.required:
                assert "Default: " in a.help, f"{where} {name}: the help does not say the default"
            if a.required and a.option_strings:
                assert "(required)" in a.help, f"{where} {name}: the help does not say it is required"
        assert p.description, f"{where}: no description"
        if path:
            example = (p.epilog or "").partition("example:\n")[2].strip()
            assert (example + " ").startswith(where + " "), (
                f"{where}: the epilog's example is not `{where} ...`"
            )
            try:
                root.parse_args(example.split()[1:])
            except SystemExit:
                pytest.fail(f"{where}: its example does not parse: {example}")
    text = help_text(dict(every)[("evaluate",)])
    assert (
        "center, or 10: four corners + centre and their mirrors, softmax averaged (§4.1). Default: center"
        in " ".join(text.split())
    )


def _main(update: bool) -> int:
    current = render()
    if update:
        DOC.write_text(current)
        print(f"wrote {DOC}")
        return 0
    bad = drift(DOC.read_text(), current) if DOC.exists() else ["docs/cli.md does not exist"]
    print("\n".join(bad) if bad else "docs/cli.md matches the CLI")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(_main("--update" in sys.argv[1:]))
