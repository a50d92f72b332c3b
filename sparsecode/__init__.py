"""sparsecode: sparse, interpretable codes for pre-trained word embeddings.

The Python API mirrors the command line::

    import sparsecode
    emb = sparsecode.load_embeddings("sample_data/glove.6B.50d.5k.h5")
    result = sparsecode.train(emb, sparsecode.TrainConfig(hidden=1000, k=32), out_dir="run")
    codes = sparsecode.encode("run", "sample_data/glove.6B.50d.5k.h5")   # in memory; out="codes.h5" writes it too
    sparsecode.neighbors(codes, "king")
    sparsecode.export_codes(codes, "codes.npz")          # or .txt (word2vec), .h5 (dense)
    sparsecode.write_report("run", codes, "report.html")

``convert_embeddings`` turns GloVe, word2vec, fastText or .npy embeddings into the HDF5 input.
"""

__version__ = "0.1.0"

import importlib

from .codes import Codes, UnknownWordError, load_codes
from .config import TrainConfig
from .convert import convert_embeddings, load_embeddings
from .embeddings import Embeddings, EmbeddingFile
from .encoding import encode, encode_file
from .errors import NotFittedError, SettingError, SparsecodeError
from .export import export_codes
from .html_report import write_report
from .model import SparseAutoencoder
from .rundir import TrainResult, load_run
from .search import CodeIndex, neighbors

__all__ = [
    "Codes", "CodeIndex", "EmbeddingFile", "Embeddings", "NotFittedError", "SettingError", "SparseAutoencoder", "SparseCoder", "SparsecodeError", "TrainConfig",
    "TrainResult", "UnknownWordError", "convert_embeddings", "encode", "encode_file", "export_codes", "load_codes", "load_embeddings",
    "load_run", "neighbors", "train", "write_report",
]

#: Names whose modules load the training loop (DDP, the optimizer), imported when first used: a
#: program that only encodes or reads runs does not load them.
_LAZY = {"train": ".training", "SparseCoder": ".estimator"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
