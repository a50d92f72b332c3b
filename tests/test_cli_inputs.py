"""What a user hands the commands, as a new user would: no --out, a rerun of an interrupted run,
codes of another model, a run or embeddings that moved, text embeddings, words that are not plain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import sparsecode as sc
from sparsecode.terminal import visible
from sparsecode.rundir import default_run_dir

from .conftest import SAMPLE, stop_at
from .test_cli import one_line_error, run

#: A model that trains in about a second on the sample.
TINY = ("--hidden", 50, "--k", 4, "--epochs", 2, "--device", "cpu")
TINY_CFG = dict(hidden=50, k=4, epochs=2, device="cpu")


def test_train_and_encode_without_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run("train", SAMPLE, *TINY)
    assert "the run goes to runs/glove.6B.50d.5k/ (no --out given)" in res.stderr
    assert "trained runs/glove.6B.50d.5k" in res.stdout
    assert sorted(p.name for p in (tmp_path / "runs" / "glove.6B.50d.5k").iterdir()) == [
        "config.json", "metrics.jsonl", "model.pt", "summary.json"]
    res = run("encode", "runs/glove.6B.50d.5k", SAMPLE, "--quiet")
    assert res.stdout.splitlines()[0] == "wrote runs/glove.6B.50d.5k/codes.h5"
    assert len(sc.load_codes(tmp_path / "runs" / "glove.6B.50d.5k" / "codes.h5").words) == 5000
    # The default is a run directory like any other: a second run is refused, not overwritten.
    line = one_line_error(run("train", SAMPLE, *TINY, ok=False))
    assert line == "error: runs/glove.6B.50d.5k: already exists; pass --force to overwrite it"


def test_default_run_dir_drops_the_endings_of_embeddings_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = {"glove.6B.50d.txt.gz": "glove.6B.50d", "wiki.en.vec": "wiki.en", "vectors.bin": "vectors",
             "emb.h5": "emb", "m.npy.gz": "m", ".h5": ".h5", "corpus.v2": "corpus.v2"}
    for given, expected in names.items():
        assert default_run_dir(tmp_path / "data" / given) == Path("runs") / expected
    assert (tmp_path / "runs").is_dir()


def test_rerun_of_an_interrupted_train_says_resume(tmp_path, sample):
    out = tmp_path / "int"
    with pytest.raises(sc.errors.TrainingInterrupted):
        sc.train(sample, sc.TrainConfig(**TINY_CFG), out_dir=out, progress=stop_at(27))
    line = one_line_error(run("train", SAMPLE, "--out", out, *TINY, "--quiet", ok=False))
    assert line == (f"error: {out}: holds a checkpoint from step 27: rerun with --resume to continue, "
                    "or --force to start again")
    assert [p.name for p in out.iterdir()] == ["checkpoint.pt"]  # nothing touched
    run("train", SAMPLE, "--out", out, *TINY, "--quiet", "--resume")
    assert (out / "model.pt").is_file() and not (out / "checkpoint.pt").exists()


#: Words that are markup, escape sequences, emoji codes, a trailing backslash, a bidi override.
ODD = ["[/url]", "[bold red]pwn[/bold red]", "\x1b]0;pwned\x07", "\x1b[31mred", ":smile:", "back\\", "a\u202eb"]


@pytest.fixture(scope="module")
def odd_codes(tmp_path_factory, sample):
    """Codes of 300 sample vectors whose words are all odd: the 7 above, then each with a number."""
    from .conftest import write_h5

    folder = tmp_path_factory.mktemp("odd")
    words = ODD + [f"{ODD[i % len(ODD)]}{i}" for i in range(len(ODD), 300)]
    emb = write_h5(folder / "odd.h5", words=words, vectors=sample.vectors[:300])
    sc.train(emb, sc.TrainConfig(hidden=20, k=3, epochs=1, device="cpu"), out_dir=folder / "run")
    sc.encode(folder / "run", emb, folder / "codes.h5", device="cpu")
    return folder


def _shown_literally(text: str) -> None:
    """Nothing of the words reached the terminal as markup, an escape sequence or an emoji."""
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "\U0001f604" not in text
    assert "\\x1b]0;pwned\\x07" in text or "\\x1b[31mred" in text


def test_words_are_shown_literally_and_safely(odd_codes):
    codes_file = odd_codes / "codes.h5"
    codes = sc.load_codes(codes_file)
    table = run("inspect", codes_file).stdout
    _shown_literally(table)
    assert "[/url]" in table and "[bold red]pwn[/bold red]" in table and ":smile:" in table
    for word in ODD:
        res = run("inspect", codes_file, "--word", word)
        title = res.stdout.splitlines()[0].strip()
        expected = word.replace("\x1b", "\\x1b").replace("\x07", "\\x07").replace("\u202e", "\\u202e")
        assert title == f"'{expected}': {len(codes.active_units(word))} active units", title
        _shown_literally(res.stdout.replace(expected, "\\x1b[31mred"))
        assert json.loads(run("inspect", codes_file, "--word", word, "--json").stdout)["word"] == word
    unit = int(codes.frequency.argmax())
    res = run("inspect", codes_file, "--dim", unit)
    top = [w for w, _ in codes.top_words(unit)]
    assert top == [e["word"] for e in json.loads(run("inspect", codes_file, "--dim", unit, "--json").stdout)["top_words"]]
    assert "\x1b" not in res.stdout and all(visible(w) in res.stdout for w in top) and "[/url]" in run("neighbors", codes_file, "[/url]", "--top", 3).stdout
    nbrs = run("neighbors", codes_file, "\x1b[31mred", "[bold red]pwn[/bold red]", "--top", 300)
    _shown_literally(nbrs.stdout)
    assert "nearest to '\\x1b[31mred'" in nbrs.stdout and "nearest to '[bold red]pwn[/bold red]'" in nbrs.stdout
    exact = json.loads(run("neighbors", codes_file, "back\\", "--top", 299, "--json").stdout)
    assert sorted(n["word"] for n in exact["back\\"]) == sorted(w for w in codes.words if w != "back\\")


def test_errors_and_warnings_quote_words_safely(odd_codes, tmp_path):
    line = one_line_error(run("inspect", odd_codes / "codes.h5", "--word", "\x1b[31mre", ok=False))
    assert line.startswith("error: ") and "\x1b" not in line
    assert line.endswith("word '\\x1b[31mre' is not in the vocabulary; did you mean '\\x1b[31mred'?")
    from .conftest import write_h5

    dup = write_h5(tmp_path / "dup.h5", words=["[bold]x[/bold]", "\x1b[2Jy", "[bold]x[/bold]"],
                   vectors=__import__("numpy").eye(3, dtype="float32"))
    res = run("train", dup, "--out", tmp_path / "run", "--hidden", 4, "--k", 1, "--epochs", 1, "--quiet")
    assert res.stderr.splitlines()[0] == ("warning: " + str(dup) + ": 1 duplicate word(s) (first: '[bold]x[/bold]'); "
                                          "kept the first occurrence of each")


def test_the_html_report_shows_the_words_as_the_terminal_does(odd_codes, tmp_path):
    from html import escape

    out = tmp_path / "report.html"
    run("report", odd_codes / "run", odd_codes / "codes.h5", "--out", out)
    page = out.read_text(encoding="utf-8")
    for word in ("[/url]", "[bold red]pwn[/bold red]", ":smile:", "back\\", "\x1b[31mred"):
        assert escape(visible(word)) in page
    assert "\x1b" not in page


def test_visible_escapes_controls_and_format_characters_only():
    assert visible("a\x1b[31mb") == "a\\x1b[31mb"
    assert visible("x\ty\n\x7f\x9b") == "x\\ty\\n\\x7f\\x9b"
    assert visible("a\u202eb\u2028") == "a\\u202eb\\u2028"
    for kept in ("[bold]", "café", "👨\u200d👩\u200d👧", "no\u00a0break", "back\\"):
        assert visible(kept) == kept


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two tiny runs of the same shape (seeds 0 and 1) on a copy of the sample, and run a's codes."""
    folder = tmp_path_factory.mktemp("two")
    emb = folder / "emb.h5"
    shutil.copy(SAMPLE, emb)
    for name, seed in (("a", 0), ("b", 1)):
        sc.train(emb, sc.TrainConfig(**TINY_CFG, seed=seed), out_dir=folder / name)
    sc.encode(folder / "a", emb, folder / "a" / "codes.h5", device="cpu")
    return folder


def test_report_and_evaluate_refuse_codes_of_another_model(two_runs, tmp_path):
    a, b, codes_file = two_runs / "a", two_runs / "b", two_runs / "a" / "codes.h5"
    fa, fb = sc.load_run(a)[0].fingerprint(), sc.load_run(b)[0].fingerprint()
    assert fa != fb and sc.load_codes(codes_file).attrs["model_fingerprint"] == fa
    expected = (f"error: {codes_file}: made by another model than the one in {b} (weights fingerprint {fa}, the run's "
                f"{fb}); give the codes that 'sparsecode encode {b} ...' wrote, or encode again with it")
    assert one_line_error(run("report", b, codes_file, "--out", tmp_path / "r.html", ok=False)) == expected
    assert not (tmp_path / "r.html").exists()
    assert one_line_error(run("evaluate", codes_file, "--model", b, ok=False)) == expected
    # The path is not what is compared: the same run copied elsewhere is the same model.
    shutil.copytree(a, tmp_path / "a-copy")
    run("report", tmp_path / "a-copy", codes_file, "--out", tmp_path / "r.html")
    assert json.loads(run("evaluate", codes_file, "--model", tmp_path / "a-copy", "--json").stdout)["reconstruction"]


def test_codes_without_a_fingerprint_still_work_with_a_warning(two_runs, tmp_path):
    import h5py

    old = tmp_path / "old.h5"
    shutil.copy(two_runs / "a" / "codes.h5", old)
    with h5py.File(old, "a") as f:
        del f.attrs["model_fingerprint"]
    res = run("report", two_runs / "a", old, "--out", tmp_path / "r.html")
    assert res.stderr.splitlines() == [f"warning: {old}: records no fingerprint of the model that made it (written by "
                                       f"an older sparsecode); taken to come from {two_runs / 'a'}: encode again to "
                                       "have that checked"]
    assert (tmp_path / "r.html").is_file()


def test_evaluate_names_what_moved_and_the_option_that_supplies_it(two_runs, tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(two_runs / "a", old / "a")
    shutil.copy(two_runs / "emb.h5", old / "emb.h5")
    config = json.loads((old / "a" / "config.json").read_text())
    (old / "a" / "config.json").write_text(json.dumps({**config, "embeddings": str(old / "emb.h5")}))
    sc.encode(old / "a", old / "emb.h5", old / "a" / "codes.h5", force=True, device="cpu")
    full = json.loads(run("evaluate", old / "a" / "codes.h5", "--json").stdout)
    old.rename(new)
    codes_file = new / "a" / "codes.h5"

    res = run("evaluate", codes_file, "--json")
    assert res.stderr.splitlines() == [
        f"warning: {codes_file}: the run that made them, {old / 'a'}, is not there (moved or deleted); FVU, "
        "cosine(x, x_hat) and --worst need the model: pass --model RUN_DIR",
        f"warning: {codes_file}: without the run the embeddings are unknown; FVU, cosine(x, x_hat), --worst, "
        "DistRatio and the dense baselines need the embeddings: pass --embeddings EMB"]
    result = json.loads(res.stdout)
    assert "reconstruction" not in result and "dist_ratio" not in result and result["model"] is None
    assert result["sparsity"] == full["sparsity"] and result["word_similarity"]["codes"] == full["word_similarity"]["codes"]

    res = run("evaluate", codes_file, "--model", new / "a")
    assert res.stderr.splitlines() == [
        f"warning: {new / 'a' / 'config.json'}: the embeddings it was trained on, {old / 'emb.h5'}, are not there "
        "(moved or deleted); FVU, cosine(x, x_hat), --worst, DistRatio and the dense baselines need the "
        "embeddings: pass --embeddings EMB"]
    assert "mean L0" in res.stdout and "FVU" not in res.stdout and "DistRatio" not in res.stdout

    res = run("evaluate", codes_file, "--model", new / "a", "--embeddings", new / "emb.h5", "--json")
    assert res.stderr == ""
    moved = json.loads(res.stdout)
    assert moved["reconstruction"] == full["reconstruction"] and moved["dist_ratio"] == full["dist_ratio"]


def test_evaluate_worst_lists_the_words_reconstructed_worst(two_runs, sample):
    import numpy as np
    import torch

    codes_file = two_runs / "a" / "codes.h5"
    res = json.loads(run("evaluate", codes_file, "--worst", 5, "--json").stdout)
    worst = res["reconstruction"]["worst"]
    # Against a direct computation: each word's own FVU from the dense codes and the model, of the
    # rows the model reconstructs (topk's cosine geometry: each word at the typical length).
    model, codes = sc.load_run(two_runs / "a")[0], sc.load_codes(codes_file)
    with torch.no_grad():
        x_hat = model.denormalise(model.decode_dense_normalised(torch.from_numpy(codes.dense()))).double().numpy()
        x = model.reconstruction_target(torch.from_numpy(sample.vectors)).double().numpy()
    error = ((x - x_hat) ** 2).sum(1) / ((x - x.mean(0)) ** 2).sum(1)
    order = np.argsort(-error)[:5]
    assert [w["word"] for w in worst] == [sample.words[i] for i in order]
    assert [w["error"] for w in worst] == pytest.approx(error[order].tolist(), rel=1e-6)
    assert worst[0]["error"] >= worst[-1]["error"] > res["reconstruction"]["fvu"]
    assert len(json.loads(run("evaluate", codes_file, "--json").stdout)["reconstruction"]) == 2  # fvu, cosine

    text = run("evaluate", codes_file, "--worst", 3).stdout
    assert "the 3 words reconstructed worst" in text and "error = the word's own FVU" in " ".join(text.split())
    for entry in worst[:3]:
        assert f"{entry['error']:.4f}" in text and entry["word"] in text
    one_line_error(run("evaluate", codes_file, "--worst", -1, ok=False), "--worst must be 0 or more (got -1)")


@pytest.fixture(scope="module")
def formats(tmp_path_factory, sample):
    """The first 1,000 sample words in every format convert reads, and as HDF5."""
    import gzip

    import numpy as np

    from .conftest import sample_subset, write_h5

    folder = tmp_path_factory.mktemp("formats")
    words, vectors = sample_subset(sample, 1000)
    text = [f"{w} {' '.join(map(str, v))}\n" for w, v in zip(words, vectors)]
    with gzip.open(folder / "glove.txt.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(text)
    (folder / "glove.txt").write_text("".join(text), encoding="utf-8")
    (folder / "wiki.vec").write_text(f"1000 50\n{''.join(text)}", encoding="utf-8")
    with open(folder / "vectors.bin", "wb") as fh:
        fh.write(b"1000 50\n" + b"".join(w.encode() + b" " + v.astype("<f4").tobytes() + b"\n"
                                         for w, v in zip(words, vectors)))
    np.save(folder / "matrix.npy", vectors)
    (folder / "matrix.vocab").write_text("".join(w + "\n" for w in words), encoding="utf-8")
    write_h5(folder / "emb.h5", words=words, vectors=vectors)
    return folder


def test_train_encode_and_evaluate_read_every_format_convert_reads(formats, tmp_path, monkeypatch):
    import numpy as np
    import torch

    monkeypatch.chdir(tmp_path)
    res = run("train", formats / "glove.txt.gz", *TINY)
    run_dir = tmp_path / "runs" / "glove"
    assert (f"read {formats / 'glove.txt.gz'} through runs/glove/embeddings.h5 (converted once, reused while "
            "glove.txt.gz is unchanged)") in res.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "config.json", "embeddings.h5", "metrics.jsonl", "model.pt", "summary.json"]
    run("train", formats / "emb.h5", "--out", tmp_path / "ref", *TINY, "--quiet")
    trained = torch.load(run_dir / "model.pt", weights_only=True)
    for name, tensor in torch.load(tmp_path / "ref" / "model.pt", weights_only=True).items():
        assert torch.equal(trained[name], tensor), name  # the same words and vectors, the same model

    run("encode", run_dir, formats / "emb.h5", "--out", "ref.h5", "--quiet")
    reference = sc.load_codes("ref.h5")
    for given in ("glove.txt.gz", "glove.txt", "wiki.vec", "vectors.bin", "matrix.npy"):
        extra = ("--vocab", formats / "matrix.vocab") if given.endswith(".npy") else ()
        out = tmp_path / f"{given}.codes.h5"
        run("encode", run_dir, formats / given, "--out", out, "--quiet", *extra)
        codes = sc.load_codes(out)
        assert codes.words == reference.words, given
        assert np.array_equal(codes.indices, reference.indices) and np.array_equal(codes.data, reference.data), given
        full = json.loads(run("evaluate", out, "--embeddings", formats / given, "--json", *extra).stdout)
        assert full["reconstruction"]["fvu"] == pytest.approx(json.loads(run(
            "evaluate", "ref.h5", "--json").stdout)["reconstruction"]["fvu"], rel=1e-12), given
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left
    # Encoding the run's own training file reads its converted copy.
    run("encode", run_dir, formats / "glove.txt.gz", "--quiet")
    assert sc.load_codes(run_dir / "codes.h5").words == reference.words


def test_files_in_no_format_and_a_model_given_for_codes(formats, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello world\n")
    line = one_line_error(run("train", tmp_path / "notes.txt", *TINY, ok=False))
    assert line == (f"error: {tmp_path / 'notes.txt'}: neither HDF5 nor GloVe, word2vec (text or binary), fastText or "
                    ".npy embeddings, gzipped or not; give an embeddings file in one of those formats")
    assert list((tmp_path / "runs").iterdir()) == []  # the run directory made for the conversion is gone
    one_line_error(run("train", formats / "matrix.npy", *TINY, ok=False),
                   "a .npy matrix needs its words: pass --vocab FILE (one word per line)")
    run("train", formats / "emb.h5", "--out", "run", *TINY, "--quiet")
    line = one_line_error(run("inspect", "run/model.pt", ok=False))
    assert line.startswith("error: run/model.pt: not a sparsecode codes file, nor any HDF5 file (wrong format or "
                           "truncated: ") and line.endswith("); give a codes file made by 'sparsecode encode'")
    assert "convert" not in line



def test_resume_on_text_embeddings_reuses_their_conversion(formats, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(sc.errors.TrainingInterrupted):
        sc.train(formats / "wiki.vec", sc.TrainConfig(**TINY_CFG), out_dir=out, progress=stop_at(5))
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "embeddings.h5"]
    converted = (out / "embeddings.h5").stat().st_mtime_ns
    one_line_error(run("train", formats / "wiki.vec", "--out", out, *TINY, ok=False), "holds a checkpoint from step 5")
    run("train", formats / "wiki.vec", "--out", out, *TINY, "--quiet", "--resume")
    assert (out / "embeddings.h5").stat().st_mtime_ns == converted
    assert json.loads((out / "config.json").read_text())["embeddings"] == str(out / "embeddings.h5")


def test_a_terminal_gets_no_escape_sequence_from_the_words(odd_codes):
    """A real process with colours on, as on a terminal (rich decides when it starts): rich's own
    colour codes are the only escape sequences in the output; the words' are shown as text."""
    import os
    import re
    import subprocess
    import sys

    from .conftest import ROOT

    codes_file = str(odd_codes / "codes.h5")
    commands = [["inspect", codes_file], ["neighbors", codes_file, "\x1b[31mred", "a\u202eb"],
                ["inspect", codes_file, "--word", "\x1b]0;pwned\x07x"]]
    script = ("import json, sys\nfrom sparsecode.cli import app\n"
              "for args in json.loads(sys.argv[1]):\n"
              "    try:\n        app(args, prog_name='sparsecode')\n    except SystemExit:\n        pass\n"
              "    print('<end>', flush=True)\n")
    env = {**{k: v for k, v in os.environ.items() if k != "NO_COLOR"}, "FORCE_COLOR": "1", "COLUMNS": "200",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(commands)], capture_output=True, text=True,
                          env=env, timeout=300)
    outputs = proc.stdout.split("<end>")[:-1]
    assert len(outputs) == 3 and outputs[2].strip() == "" and "Traceback" not in proc.stderr, proc.stderr
    for shown in [outputs[0], outputs[1], proc.stderr]:
        assert re.findall(r"\x1b\[[0-9;]*m", shown), "colours expected on a terminal"
        assert re.sub(r"\x1b\[[0-9;]*m", "", shown).count("\x1b") == 0 and "\x07" not in shown and "\u202e" not in shown
        assert "\x1b[31mred" not in shown and "\x1b]0;pwned" not in shown
    assert "\\x1b[31mred" in outputs[0] and "nearest to '\\x1b[31mred'" in outputs[1]
    assert "word '\\x1b]0;pwned\\x07x' is not in the vocabulary" in re.sub(r"\x1b\[[0-9;]*m", "", proc.stderr)


def test_a_folder_holding_nothing_or_only_the_converted_input_is_free(tmp_path):
    from sparsecode.rundir import check_run_dir

    (tmp_path / "empty").mkdir()
    assert check_run_dir(tmp_path / "empty", force=False, resume=False) == tmp_path / "empty"
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "embeddings.h5").write_bytes(b"converted")
    assert check_run_dir(tmp_path / "cache", force=False, resume=False) == tmp_path / "cache"
    (tmp_path / "cache" / "notes.txt").write_text("mine")
    with pytest.raises(sc.SparsecodeError, match=r"cache: already exists; pass force=True to overwrite it$"):
        check_run_dir(tmp_path / "cache", force=False, resume=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(sc.SparsecodeError, match=r"file: is a file; give a directory for the run$"):
        check_run_dir(tmp_path / "file", force=True, resume=False)
