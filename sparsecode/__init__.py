"""sparsecode: sparse, interpretable codes for pre-trained word embeddings.

The Python API mirrors the command line::

    import sparsecode
    emb = sparsecode.load_embeddings("sample_data/glove.6B.50d.5k.h5")
    result = sparsecode.train(emb, sparsecode.TrainConfig(hidden=1000, k=32), out_dir="run")
    sparsecode.encode("run", "sample_data/glove.6B.50d.5k.h5", out="codes.h5")
    codes = sparsecode.load_codes("codes.h5")
    sparsecode.neighbors(codes, "king")
"""

__version__ = "0.1.0"

from .codes import Codes, UnknownWordError, load_codes
from .config import TrainConfig
from .embeddings import Embeddings, EmbeddingFile, load_embeddings
from .encode import encode
from .errors import SparsecodeError
from .model import SparseAutoencoder
from .search import CodeIndex, neighbors
from .train import TrainResult, load_run, train

__all__ = [
    "Codes", "CodeIndex", "EmbeddingFile", "Embeddings", "SparseAutoencoder", "SparsecodeError", "TrainConfig",
    "TrainResult", "UnknownWordError", "encode", "load_codes", "load_embeddings", "load_run", "neighbors", "train",
]
