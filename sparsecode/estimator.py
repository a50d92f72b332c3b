"""A scikit-learn style estimator over the library, for notebooks::

    coder = sc.SparseCoder(hidden=1000, k=32, epochs=10).fit(X)    # X: (N, D) array-like, KeyedVectors, Embeddings or a file
    Z = coder.transform(X)            # (N, H) scipy.sparse.csr_matrix (sparsecode.Codes without scipy)
    X_hat = coder.inverse_transform(Z)
    coder.save("runs/nb")             # the run directory 'sparsecode train' writes
    coder = sc.SparseCoder.load("runs/nb")

The settings are :class:`~sparsecode.config.TrainConfig`'s, with its defaults; nothing here
trains, encodes or decodes by itself: :func:`sparsecode.train`, :func:`sparsecode.encode` and the
model do. scikit-learn is not needed (``get_params``/``set_params``, ``get_feature_names_out`` and
``__sklearn_is_fitted__`` follow its conventions, so ``sklearn.base.clone``, grid searches and
``check_is_fitted`` work when it is installed).

Used before ``fit``, it raises :class:`~sparsecode.errors.NotFittedError`, which is a ``ValueError``
and an ``AttributeError`` as scikit-learn's ``NotFittedError`` is, and an instance of scikit-learn's
own class as well whenever the program has imported it (:func:`not_fitted`): code that catches
scikit-learn's error catches it, without scikit-learn becoming a dependency or being imported here.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .codes import Codes
from .config import TrainConfig, resolve_device
from .embeddings import embeddings_in_memory
from .encoding import encode
from .errors import NotFittedError, SparsecodeError
from .rundir import TrainResult, load_run, prepare_run_dir, read_logs, write_run
from .training import Progress, train

_SETTINGS = [f.name for f in dataclasses.fields(TrainConfig)]


class SparseCoder:
    """A k-sparse autoencoder as an estimator: ``fit``, ``transform``, ``inverse_transform``.

    Every keyword is a :class:`~sparsecode.config.TrainConfig` setting (``hidden``, ``k``,
    ``sparsity``, ``epochs``, ``device``, ...); those not given keep its defaults. After
    :meth:`fit`: ``model_`` (the :class:`~sparsecode.model.SparseAutoencoder`), ``metrics_`` (one
    dict per epoch), ``summary_`` (the final model over the training words), ``run_info_`` and
    ``n_features_in_`` (D).

    Not ``sklearn.decomposition.SparseCoder``, which codes data over a dictionary given to it: this
    one learns its dictionary (the decoder) and its encoder from the data, closer to scikit-learn's
    ``DictionaryLearning`` with a k-sparse code.
    """

    def __init__(self, **settings):
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise SparsecodeError(f"SparseCoder: unknown setting(s) {', '.join(unknown)}; the settings are "
                                  f"TrainConfig's: {', '.join(_SETTINGS)}")
        defaults = TrainConfig()
        for name in _SETTINGS:
            setattr(self, name, settings.get(name, getattr(defaults, name)))

    # -- scikit-learn's conventions ---------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in _SETTINGS}

    def set_params(self, **params) -> "SparseCoder":
        SparseCoder(**params)  # the same check of the names
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = TrainConfig()
        changed = [f"{n}={getattr(self, n)!r}" for n in _SETTINGS if getattr(self, n) != getattr(defaults, n)]
        return f"SparseCoder({', '.join(changed)})"

    @property
    def config(self) -> TrainConfig:
        """The settings as a :class:`TrainConfig`."""
        return TrainConfig(**self.get_params())

    # -- fit, transform, inverse_transform --------------------------------------------------------
    def fit(self, X, y=None, progress: Callable[[Progress], None] | None = None) -> "SparseCoder":
        """Train on ``X``: a (N, D) array-like (numpy, a tensor, a list of lists), a gensim
        ``KeyedVectors``, :class:`Embeddings`, or an embeddings file (streamed). ``y`` is ignored.
        ``progress`` is called as :func:`sparsecode.train` calls it (the CLI's bar is such a callback)."""
        result = train(_input(X, "fit(X)"), self.config, progress=progress)
        self._fitted(result)
        return self

    def fit_transform(self, X, y=None, progress: Callable[[Progress], None] | None = None):
        return self.fit(X, progress=progress).transform(X)

    def transform(self, X):
        """The codes of ``X`` (what :meth:`fit` takes) at the model's encode k: a (N, H)
        ``scipy.sparse.csr_matrix`` when scipy is installed, else :class:`~sparsecode.codes.Codes`
        (``.to_torch()``, ``.dense()``, ...)."""
        model = self._model()
        codes = encode(model, _input(X, "transform(X)"), device=self.device)
        try:
            import scipy.sparse  # noqa: F401
        except ImportError:
            return codes
        return codes.to_scipy()

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The names of the H code dimensions, as scikit-learn names a transformer's outputs:
        ``sparsecoder0``, ``sparsecoder1``, ... (``input_features`` is ignored)."""
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{unit}" for unit in range(self._model().n_hidden)], dtype=object)

    @property
    def n_features_in_(self) -> int:
        """D, the dimension of the vectors the model was fitted on."""
        return self._model().d_in

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, "model_", None) is not None

    def inverse_transform(self, Z, batch_size: int = 8192) -> np.ndarray:
        """(N, D) float32 reconstructions, on the inputs' scale, of codes ``Z``: what
        :meth:`transform` returns, :class:`Codes`, any scipy sparse matrix, or a dense (N, H) array."""
        model = self._model()
        if isinstance(Z, Codes):
            Z = _CodesRows(Z)
        elif hasattr(Z, "tocsr"):
            Z = Z.tocsr()
        elif not isinstance(Z, _CodesRows):
            Z = np.asarray(Z, dtype=np.float32)
            if Z.ndim != 2:
                raise SparsecodeError(f"inverse_transform: expected (N, H) codes, got shape {Z.shape}")
        if Z.shape[1] != model.n_hidden:
            raise SparsecodeError(f"inverse_transform: codes have {Z.shape[1]} units but the model has {model.n_hidden}")
        device = model.W_dec.device
        out = np.empty((Z.shape[0], model.d_in), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, Z.shape[0], batch_size):
                block = Z[start : start + batch_size]
                block = block.toarray() if hasattr(block, "toarray") else block
                z = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)).to(device)
                out[start : start + len(z)] = model.denormalise(model.decode_dense_normalised(z)).cpu().numpy()
        return out

    # -- the run directory ------------------------------------------------------------------------
    def save(self, run_dir: str | os.PathLike, force: bool = False) -> str:
        """Write the fitted model as the run directory ``sparsecode train`` writes (``model.pt``,
        ``config.json``, ``metrics.jsonl``, ``summary.json``), which ``sparsecode encode``,
        ``report`` and :meth:`load` read. Refuses an existing directory unless ``force``."""
        self._model()
        prepare_run_dir(Path(run_dir), force, resume=False)
        write_run(run_dir, self.result_)
        return os.fspath(run_dir)

    @classmethod
    def load(cls, run_dir: str | os.PathLike, device: str | None = None) -> "SparseCoder":
        """A fitted estimator from a run directory (written by :meth:`save` or ``sparsecode train``)."""
        logs = read_logs(run_dir)
        settings = TrainConfig.from_dict(logs.config).to_dict()
        if device is not None:
            settings["device"] = device
        coder = cls(**settings)
        model, _ = load_run(run_dir, device=resolve_device(coder.device))
        run_info = {k: v for k, v in logs.config.items() if k not in _SETTINGS and k != "sparsecode_version"}
        coder._fitted(TrainResult(model, coder.config, logs.metrics, logs.summary, run_info))
        return coder

    # -- internals --------------------------------------------------------------------------------
    def _fitted(self, result: TrainResult) -> None:
        self.result_ = result
        self.model_, self.metrics_, self.summary_, self.run_info_ = (result.model, result.metrics, result.summary,
                                                                      result.run_info)

    def _model(self):
        model = getattr(self, "model_", None)
        if model is None:
            raise not_fitted("this SparseCoder is not fitted yet; call fit(X) first, or SparseCoder.load(run_dir)")
        return model


class _CodesRows:
    """Row slices of :class:`Codes` as dense blocks, for :meth:`SparseCoder.inverse_transform`."""

    def __init__(self, codes: Codes):
        self.codes, self.shape = codes, codes.shape

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.codes.dense(np.arange(*rows.indices(self.shape[0])))


def _input(X, what: str):
    """What :func:`sparsecode.train` and :func:`sparsecode.encode` take: a file's path, or the
    embeddings in memory (``what`` names ``X`` in an error)."""
    if isinstance(X, (str, os.PathLike)):
        return X
    return embeddings_in_memory(X, what)


def not_fitted(message: str) -> NotFittedError:
    """A :class:`NotFittedError`, also an instance of scikit-learn's ``NotFittedError`` when the
    program has imported scikit-learn (found in ``sys.modules``, never imported here)."""
    theirs = getattr(sys.modules.get("sklearn.exceptions"), "NotFittedError", None)
    if isinstance(theirs, type) and issubclass(theirs, Exception) and not issubclass(NotFittedError, theirs):
        return _with_sklearn(theirs)(message)
    return NotFittedError(message)


@functools.lru_cache(maxsize=None)
def _with_sklearn(theirs: type) -> type:
    return type("NotFittedError", (NotFittedError, theirs), {"__module__": NotFittedError.__module__,
                                                              "__doc__": NotFittedError.__doc__})
