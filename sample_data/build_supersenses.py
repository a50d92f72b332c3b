"""Build sparsecode/resources/wordnet_supersenses.tsv.gz from the WordNet 3.0 database files.

Usage (WordNet is needed only here, never by sparsecode at run time):

    apt-get install wordnet-base           # Debian's package: /usr/share/wordnet/{index,data}.{noun,verb,adj,adv}
    python sample_data/build_supersenses.py /usr/share/wordnet --out sparsecode/resources/wordnet_supersenses.tsv.gz

For every lemma of one word (no underscore: WordNet writes multi-word lemmas with ``_``) and every
part of speech it has, the table keeps the lexicographer file (the "supersense": noun.animal,
verb.motion, ... 45 in all) of its first listed synset, which WordNet lists first because it is
the most frequent sense. A word has up to four (one per part of speech). Each line of the table is
``lemma<TAB>n1,n2,...``: the lexicographer file numbers (00-44, see LEXNAMES in
:mod:`sparsecode.interpret`) in the order noun, verb, adjective, adverb.

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wordnet", type=Path, help="the folder with WordNet 3.0's index.* and data.* files")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    tables = [first_sense_lexfiles(args.wordnet, name) for name, _ in POS]
    lemmas = sorted(set().union(*tables))
    text = "".join(f"{w}\t{','.join(str(t[w]) for t in tables if w in t)}\n" for w in lemmas)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        gz.write(text.encode("utf-8"))
    args.out.write_bytes(buf.getvalue())
    print(f"wrote {args.out}: {len(lemmas)} lemmas, {buf.tell()} bytes")


if __name__ == "__main__":
    main()
