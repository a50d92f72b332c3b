"""Build sparsecode/resources/wordnet_hypernyms.tsv.gz from the WordNet 3.0 database files.

Usage (WordNet is needed only here, never by sparsecode at run time):

    apt-get install wordnet-base           # Debian's package: /usr/share/wordnet/{index,data}.{noun,verb}
    python sample_data/build_hypernyms.py /usr/share/wordnet --out sparsecode/resources/wordnet_hypernyms.tsv.gz

The table names units (:mod:`sparsecode.naming`): a unit's label is the most specific hypernym that
most of its top words share. It keeps, for every one-word lemma (no ``_``), its first SENSES noun
senses and its first SENSES verb senses (WordNet lists a lemma's senses most frequent first), and
every noun and verb synset on their hypernym paths (hypernyms ``@`` and instance hypernyms ``@i``:
``france`` is an instance of ``European country``). Two kinds of lines, tab-separated:

    s<TAB>name<TAB>lexfile<TAB>depth<TAB>parents a synset; its id is its position among the s lines
    w<TAB>lemma<TAB>ids                          a lemma and its kept senses' synset ids

``name`` is the synset's first lemma with spaces for ``_`` (``edible fruit``), ``lexfile`` the number
of its lexicographer file (its supersense: 13 is noun.food; LEXNAMES in :mod:`sparsecode.interpret`),
``depth`` the fewest hypernym steps to a root (``entity`` is 0), ``parents`` the comma-separated ids
of its hypernyms (empty for a root). Synsets come in the order of their first use by the sorted
lemmas, so the output is deterministic (gzip without a timestamp): rebuilding gives the same bytes.
"""

import argparse
import gzip
import io
from pathlib import Path

#: Senses kept per lemma and part of speech: the first two cover a word's news sense as well as
#: its dictionary one (``apple`` the fruit and the tree) without reaching its rare senses.
SENSES = 2
POS = (("noun", "n"), ("verb", "v"))
HYPERNYM_POINTERS = {"@", "@i"}


def read_synsets(wordnet: Path, name: str, pos: str) -> dict[tuple[str, int], tuple[str, list[tuple[str, int]], int]]:
    """(pos, offset) -> (first lemma, hypernym keys, lexicographer file) for every synset of data.NAME."""
    out = {}
    with open(wordnet / f"data.{name}", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(" "):  # the licence header
                continue
            parts = line.split(" | ")[0].split()
            offset, w_cnt = int(parts[0]), int(parts[3], 16)
            first = parts[4]
            at = 4 + 2 * w_cnt
            p_cnt = int(parts[at])
            ptrs = parts[at + 1 : at + 1 + 4 * p_cnt]
            parents = [(ptrs[i + 2], int(ptrs[i + 1])) for i in range(0, len(ptrs), 4) if ptrs[i] in HYPERNYM_POINTERS]
            out[(pos, offset)] = (first, parents, int(parts[1]))
    return out


def read_senses(wordnet: Path, name: str, pos: str) -> dict[str, list[tuple[str, int]]]:
    """One-word lemma -> its first SENSES synsets in index.NAME."""
    out = {}
    with open(wordnet / f"index.{name}", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(" "):
                continue
            parts = line.split()
            lemma, synset_cnt, p_cnt = parts[0], int(parts[2]), int(parts[3])
            offsets = parts[4 + p_cnt + 2 :]
            assert len(offsets) == synset_cnt, line
            if "_" not in lemma:
                out[lemma] = [(pos, int(o)) for o in offsets[:SENSES]]
    return out


def depths(synsets: dict) -> dict:
    """Fewest hypernym steps from each synset to a root."""
    memo: dict = {}

    def depth(key) -> int:
        if key not in memo:
            parents = synsets[key][1]
            memo[key] = 1 + min(depth(p) for p in parents) if parents else 0
        return memo[key]

    for key in synsets:
        depth(key)
    return memo


def build(wordnet: Path) -> tuple[str, int, int]:
    """The table's text, the number of lemmas and of synsets."""
    synsets, senses = {}, {}
    for name, pos in POS:
        synsets.update(read_synsets(wordnet, name, pos))
        for lemma, keys in read_senses(wordnet, name, pos).items():
            senses.setdefault(lemma, []).extend(keys)
    depth = depths(synsets)
    ids: dict = {}
    order: list = []

    def number(key) -> int:
        # Ancestors first, so that every parent id is known when its child is written.
        if key not in ids:
            for parent in synsets[key][1]:
                number(parent)
            ids[key] = len(order)
            order.append(key)
        return ids[key]

    lemma_lines = []
    for lemma in sorted(senses):
        kept = [number(k) for k in senses[lemma]]
        lemma_lines.append(f"w\t{lemma}\t{','.join(map(str, kept))}\n")
    synset_lines = [f"s\t{synsets[k][0].replace('_', ' ')}\t{synsets[k][2]}\t{depth[k]}\t"
                    f"{','.join(str(ids[p]) for p in synsets[k][1])}\n" for k in order]
    return "".join(synset_lines + lemma_lines), len(lemma_lines), len(synset_lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wordnet", type=Path, help="the folder with WordNet 3.0's index.* and data.* files")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    text, n_lemmas, n_synsets = build(args.wordnet)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        gz.write(text.encode("utf-8"))
    args.out.write_bytes(buf.getvalue())
    print(f"wrote {args.out}: {n_lemmas} lemmas, {n_synsets} synsets, {buf.tell()} bytes")


if __name__ == "__main__":
    main()
