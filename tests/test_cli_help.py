"""``--help`` as a well-kept CLI writes it: flags without a value, arguments by name, choices by
their values, every default shown and taken from where it lives, readable at 80 columns."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from sparsecode.cli import app
from sparsecode.clihelp import by_objective
from sparsecode.config import DEVICES, SPARSITIES, TrainConfig
from sparsecode.encoding import EncodeSettings

COMMANDS = ("train", "encode", "inspect", "neighbors", "evaluate", "convert", "export", "report", "tradeoff")
#: Options whose absence means "not asked for": they select what to show, or apply to one input format.
NO_DEFAULT = {("inspect", "--dim"), ("inspect", "--word"), ("convert", "--vocab"), ("train", "--vocab"),
              ("encode", "--vocab"), ("evaluate", "--vocab"), ("tradeoff", "--out"), ("tradeoff", "--vocab")}


def help_of(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "300", "NO_COLOR": "1"},
                                prog_name="sparsecode")
    assert result.exit_code == 0, result.output
    return result.stdout


def option_rows(text: str) -> dict[str, str]:
    """``{"--name": the row's text}`` of every option in the Options panel (one line each at 300 columns)."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"│\s*\*?\s*(--[a-z0-9-]+)\s", line)
        if match:
            rows[match.group(1)] = line
    return rows


def test_usage_lines_name_the_arguments():
    usages = {c: next(line.strip() for line in help_of(c).splitlines() if "Usage:" in line) for c in COMMANDS}
    assert usages == {
        "train": "Usage: sparsecode train [OPTIONS] EMBEDDINGS",
        "encode": "Usage: sparsecode encode [OPTIONS] RUN_DIR EMBEDDINGS",
        "inspect": "Usage: sparsecode inspect [OPTIONS] CODES_FILE",
        "neighbors": "Usage: sparsecode neighbors [OPTIONS] CODES_FILE WORDS...",
        "evaluate": "Usage: sparsecode evaluate [OPTIONS] CODES_FILE",
        "convert": "Usage: sparsecode convert [OPTIONS] SOURCE",
        "export": "Usage: sparsecode export [OPTIONS] CODES_FILE",
        "report": "Usage: sparsecode report [OPTIONS] RUN_DIR CODES_FILE",
        "tradeoff": "Usage: sparsecode tradeoff [OPTIONS] EMBEDDINGS",
    }


def params_of(command: str) -> list:
    group = typer.main.get_command(app)
    cmd = group.commands[command] if command else group
    return [p for p in cmd.get_params(click_context(cmd)) if p.param_type_name == "option"]


def click_context(cmd):
    return cmd.make_context("sparsecode", ["--help"], resilient_parsing=True)


@pytest.mark.parametrize("command", ("", *COMMANDS))
def test_flags_take_no_value_and_every_default_shows(command):
    text = help_of(*([command] if command else []))
    assert "<bool>" not in text and "{" not in text and "αk" not in text
    rows = option_rows(text)
    params = params_of(command)
    assert sorted(rows) == sorted(max(p.opts, key=len) for p in params)
    for p in params:
        name = max(p.opts, key=len)
        after = rows[name].split(name, 1)[1].split()
        after = after[1:] if after[0].startswith("-") and len(after[0]) == 2 else after  # the short name
        if p.is_flag:
            assert after[0] == p.help.split()[0], f"{command} {name}: a flag shows a value: {rows[name]}"
        elif (command, name) not in NO_DEFAULT and not p.required:
            assert "[default: " in rows[name], f"{command} {name} shows no default: {rows[name]}"


def test_choices_show_their_values():
    train, encode = option_rows(help_of("train")), option_rows(help_of("encode"))
    assert SPARSITIES == ("topk", "batchtopk", "kl", "l1", "spine")
    assert "--sparsity" in train and "<choice>" in train["--sparsity"]
    assert "[choices: topk, batchtopk, kl, l1, spine]" in train["--sparsity"]
    assert "[choices: auto, cpu, cuda, cuda:N]" in train["--device"]
    assert "[choices: auto, cpu, cuda, cuda:N]" in encode["--device"]
    assert "[choices: encoder, omp]" in encode["--method"]
    assert "[choices: id, frequency, coherence, strict]" in option_rows(help_of("inspect"))["--sort"]
    assert "[choices: auto, glove, word2vec, word2vec-bin, fasttext, npy]" in option_rows(help_of("convert"))["--format"]
    assert "[choices: auto, word2vec, npz, dense-h5]" in option_rows(help_of("export"))["--format"]
    assert DEVICES == ("auto", "cpu", "cuda", "cuda:N")  # cuda:N: any GPU index, checked by the config


def narrow_help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"},
                                prog_name="sparsecode")
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help_reads_at_80_columns(command):
    """Every line fits, and no choice is cut mid-word (train --help was 149 lines and showed
    'word 2vec-bin'): the values wrap between words, in the help text."""
    text = narrow_help(command)
    assert max(map(len, text.splitlines())) <= 80
    words = set(text.replace("│", " ").replace(",", " ").replace("]", " ").split())
    for p in params_of(command):
        if p.metavar == "<choice>":
            values = p.help.split("[choices: ")[1].rstrip("]").split(", ")
            assert all(v in words for v in values), (command, p.opts, values)


def test_train_help_in_panels():
    text = narrow_help("train")
    assert len(text.splitlines()) <= 112  # 149 before the panels (with two settings fewer)
    panels = [line.split("─ ")[1].split(" ─")[0] for line in text.splitlines() if line.startswith("╭─ ")]
    assert panels == ["Arguments", "Options", "Model", "Other objectives, noise", "Optimisation", "Unit health",
                      "Hardware"]
    hardware = text[text.index("╭─ Hardware"):]
    assert "--device" in hardware and "--nproc" in hardware and "--checkpoint-every" in hardware


def test_defaults_come_from_where_they_live():
    defaults = TrainConfig()
    train = option_rows(help_of("train"))
    for name, value in (("--hidden", defaults.hidden), ("--epochs", defaults.epochs), ("--lr", defaults.lr),
                        ("--batch-size", defaults.batch_size), ("--sparsity", defaults.sparsity),
                        ("--device", defaults.device), ("--checkpoint-every", defaults.checkpoint_every)):
        assert f"[default: {value}]" in train[name], train[name]
    assert by_objective("k") == "32 for topk, batchtopk"
    assert by_objective("rho") == "0.05 for kl; 0.15 for spine"
    assert by_objective("noise") == "0.2 for spine, else 0"
    assert by_objective("homeostasis") == "3e-05 for topk, batchtopk"
    for name, setting in (("--k", "k"), ("--rho", "rho"), ("--beta", "beta"), ("--l1-coef", "l1_coef"),
                          ("--noise", "noise"), ("--homeostasis", "homeostasis")):
        assert f"[default: ({by_objective(setting)})]" in train[name]  # a description: in parentheses, as Typer writes it
    encode = option_rows(help_of("encode"))
    assert f"[default: {EncodeSettings().top_words}]" in encode["--top-words"]
    assert f"[default: {EncodeSettings().batch_size}]" in encode["--batch-size"]
    assert "[default: (the run's encode k)]" in encode["--k"]
    assert "[default: (the run recorded in the codes file)]" in option_rows(help_of("evaluate"))["--model"]
