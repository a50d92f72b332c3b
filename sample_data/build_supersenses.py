"""Build sparsecode/resources/wordnet_supersenses.tsv.gz and wordnet_exceptions.tsv.gz from the
WordNet 3.0 database files.

Usage (WordNet is needed only here, never by sparsecode at run time):

    apt-get install wordnet-base           # Debian's package: /usr/share/wordnet/{index,data}.{noun,verb,adj,adv}, *.exc
    python sample_data/build_supersenses.py /usr/share/wordnet --out sparsecode/resources/wordnet_supersenses.tsv.gz

For every lemma of one word (no underscore: WordNet writes multi-word lemmas with ``_``) and every
part of speech it has, the table keeps the lexicographer file (the "supersense": noun.animal,
verb.motion, ... 45 in all) of its first listed synset, which WordNet lists first because it is
the most frequent sense. A word has up to four (one per part of speech). Each line of the table is
``lemma<TAB>n1,n2,...``: the lexicographer file numbers (00-44, see LEXNAMES in
:mod:`sparsecode.interpret`) in the order noun, verb, adjective, adverb.

Beside it (``--exceptions``, by default ``wordnet_exceptions.tsv.gz`` in the same folder) go
WordNet's morphological exception lists (``noun.exc``, ``verb.exc``, ``adj.exc``, ``adv.exc``:
irregular forms such as ``ran`` -> ``run``), which :mod:`sparsecode.wordnet` reads with the
detachment rules to find a word's base forms. Each line is ``pos<TAB>form<TAB>base1 base2...``
(pos ``n``, ``v``, ``a`` or ``r``), kept only for one-word forms and for base forms the table holds
in that part of speech: the others can never be looked up.

The output is deterministic (sorted lemmas, gzip without a timestamp), so rebuilding it gives the
same bytes.
"""

import argparse
import gzip
import io
from pathlib import Path

POS = (("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r"))


def first_sense_lexfiles(wordnet: Path, name: str) -> dict[str, int]:
    """lemma -> lexicographer file number of its first synset in index.NAME."""
    data = (wordnet / f"data.{name}").read_bytes()
    out = {}
    with open(wordnet / f"index.{name}", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(" "):  # the licence header
                continue
            parts = line.split()
            lemma, synset_cnt, p_cnt = parts[0], int(parts[2]), int(parts[3])
            offsets = parts[4 + p_cnt + 2 :]
            assert len(offsets) == synset_cnt, line
            if "_" in lemma:
                continue
            offset = int(offsets[0])  # the first listed sense: the most frequent one
            record = data[offset : data.index(b"\n", offset)].split()
            assert int(record[0]) == offset, (lemma, offset)
            out[lemma] = int(record[1])  # lex_filenum
    return out


def exceptions(wordnet: Path, tables: list[dict[str, int]]) -> list[str]:
    """Lines ``pos<TAB>form<TAB>bases`` of the exception lists, for one-word forms and the bases that
    ``tables`` (one per part of speech, in POS order) hold."""
    lines = []
    for (name, pos), table in zip(POS, tables):
        for line in (wordnet / f"{name}.exc").read_text(encoding="utf-8").splitlines():
            form, *bases = line.split()
            bases = [b for b in bases if b in table]
            if "_" not in form and bases:
                lines.append(f"{pos}\t{form}\t{' '.join(bases)}\n")
    return lines


def write_gzip(path: Path, text: str) -> int:
    """Write ``text`` gzipped without a timestamp (the same bytes on every build); the size written."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        gz.write(text.encode("utf-8"))
    path.write_bytes(buf.getvalue())
    return buf.tell()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wordnet", type=Path, help="the folder with WordNet 3.0's index.* and data.* files")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--exceptions", type=Path, help="the exception lists' output (default: wordnet_exceptions.tsv.gz "
                                                    "beside --out)")
    args = ap.parse_args()
    tables = [first_sense_lexfiles(args.wordnet, name) for name, _ in POS]
    lemmas = sorted(set().union(*tables))
    text = "".join(f"{w}\t{','.join(str(t[w]) for t in tables if w in t)}\n" for w in lemmas)
    size = write_gzip(args.out, text)
    print(f"wrote {args.out}: {len(lemmas)} lemmas, {size} bytes")
    exc_out = args.exceptions or args.out.with_name("wordnet_exceptions.tsv.gz")
    lines = exceptions(args.wordnet, tables)
    size = write_gzip(exc_out, "".join(lines))
    print(f"wrote {exc_out}: {len(lines)} irregular forms, {size} bytes")


if __name__ == "__main__":
    main()
