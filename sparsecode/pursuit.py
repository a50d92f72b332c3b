"""Sparse codes by orthogonal matching pursuit (OMP) over the learned decoder, batched in torch.

The encoder of a top-k autoencoder is a fast guess of the best k-sparse code; its decoder is a good
dictionary, and pursuit finds much better codes for the same k. With atoms ``W`` (H, D) (the
unit-norm rows of ``W_dec``) and a target ``y`` (D,), OMP picks k atoms one at a time:

1. select the atom most correlated with the residual, ``j = argmax_i |<y - z_S W_S, w_i>|``;
2. refit all coefficients on the support S by least squares, so that the residual stays
   orthogonal to every chosen atom.

:func:`omp` runs a whole batch at once (no loop over rows; one loop over the k steps) and never
reads a value back to the host, so that it suits CUDA as well as CPUs (it has only been measured
on CPUs). Per row it keeps:

- ``alpha`` (H,): the correlations of the residual with every atom. Through the Gram matrix
  ``G = W W^T`` (computed once per model) they change by ``-G[S] · delta`` when the coefficients
  change by ``delta``: an embedding-bag sum over |S| rows of G, O(|S|·H) per step instead of a
  dense O(D·H) product (which takes over once |S| nears D / ``BAG_RATIO``);
- ``r_inv`` (k, k): the inverse of the triangular factor R of the chosen atoms (``W_S^T = Q R``,
  ``R^T R = G[S, S]``), grown by one column per step. This is the incremental Cholesky update of
  batch OMP (Rubinstein, Zibulevsky and Elad 2008) kept in inverse form, so that every update is
  a small batched product and no triangular system is solved;
- ``coefs`` (k,): the least-squares coefficients; the new atom adds ``<y, q_new>`` times the new
  column of ``r_inv`` (q_new: the new atom orthogonalised against the chosen ones).

The argmax over H atoms is the other hot spot; :class:`Dictionary` explains how it is searched.

Non-negative OMP (``nonneg=True``) keeps every coefficient > 0, so that codes read like the
encoder's. Each step takes the atom with the largest *positive* correlation, and only if the
refitted least-squares coefficients of the whole support stay positive with it; otherwise, or
when no correlation is positive, the row stops with fewer than k non-zeros. Non-negativity is thus
enforced in the selection (as in the fast non-negative OMP of Yaghoobi, Wu and Davies, 2015): the
support only grows and the coefficients stay the exact least-squares fit on it, which being
positive is also the non-negative least-squares fit. Measured on 10,000 GloVe words (H=1000, k=15)
this loses little: 0.2% of the rows stop early, and trying the next-best atoms when the best one
fails lowers the FVU by only 0.4% (0.01936 to 0.01929 with 8 tries), not worth a top-k per step.
The usual alternatives fit a batched implementation worse: clipping negative coefficients to 0
breaks the orthogonality that OMP's updates rely on, and an exact NNLS (Lawson-Hanson) per step
needs a data-dependent number of inner iterations that drop atoms again.

A signed row stops early only when its best atom is (numerically) in the span of the chosen ones,
as scikit-learn's ``orthogonal_mp_gram`` does, or when its residual is exactly zero.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import need

if TYPE_CHECKING:
    from .model import SparseAutoencoder

#: Size of the Gram matrix slices read by the correlation update on a CPU (a core's L2 cache or less).
GRAM_SLICE_BYTES = 1 << 20
#: The correlation update reads |S| rows of G per row, while recomputing the correlations from the
#: residual is a dense (D, H) product; the second takes over once |S| * BAG_RATIO reaches D. Measured
#: on one CPU core at D=50, H=1000: |S| = 16 rows cost 0.66 us per row of the batch, the product 0.97.
BAG_RATIO = 2
#: How codes can be computed (``--method``): the model's encoder, or OMP over its decoder.
METHODS = ("encoder", "omp")
#: The number of blocks is a multiple of this: torch's CPU reductions over the rows of a (B, rows,
#: n_blocks) array are vectorised for such widths (measured at H=1024: 32 or 64 blocks about 60 ns per row
#: of the batch, 48 blocks 420 ns, 16 blocks 2,000 ns).
BLOCK_LANES = 32
#: Rows coded at a time on a CPU, so that their (rows, H) correlations stay in cache. Measured on one
#: core at H=1000, k=15: 17 us per row in slices of 1024 rows, 20 in slices of 2048, 22 of 4096.
CPU_ROWS = 1024


class Dictionary(NamedTuple):
    """Atoms prepared for :func:`omp` (once per model): padded to whole blocks, with their Gram matrix.

    The correlations of a row with the atoms are searched block by block: ``amax`` over each block
    (vectorised) then an argmax over the blocks and within the winning one, several times faster
    on a CPU than one ``argmax`` over all H atoms. Atom ``a`` lies in block ``a % n_blocks``, so a
    (B, Hp) array of correlations viewed as (B, Hp / n_blocks, n_blocks) has one block per column
    and the block maxima reduce over contiguous rows.

    On a CPU the Gram matrix is also kept as column slices of about 1 MB: the correlation update
    reads |S| rows of G per row of the batch, faster when the table it reads from fits in a core's
    L2 cache (measured at H=1000 on one core: OMP as a whole 15% faster at k=15 and at k=32).
    """

    atoms: Tensor
    """(Hp, D) the H atoms, then Hp - H rows of zeros (never selected)."""
    gram: Tensor
    """(Hp, Hp) ``atoms @ atoms.T``."""
    gram_columns: tuple[Tensor, ...]
    """Contiguous column slices of ``gram``, in order: (Hp, width) each."""
    n_atoms: int
    """H, the number of real atoms."""
    n_blocks: int
    """Blocks the Hp atoms are searched in; Hp is a multiple of it."""

    @classmethod
    def of(cls, atoms: Tensor, dtype: torch.dtype | None = None) -> "Dictionary":
        """Prepare (H, D) ``atoms`` (in ``dtype``, default theirs)."""
        H, D = atoms.shape
        n_blocks = BLOCK_LANES * max(1, round(math.sqrt(H) / BLOCK_LANES))
        padded = atoms.new_zeros(-(-H // n_blocks) * n_blocks, D, dtype=dtype or atoms.dtype)
        padded[:H] = atoms
        gram = padded @ padded.T
        Hp = gram.shape[0]
        width = Hp if atoms.device.type != "cpu" else max(GRAM_SLICE_BYTES // (Hp * gram.element_size()), 64)
        columns = tuple(c.contiguous() for c in gram.split(width, dim=1))
        return cls(padded, gram, columns, H, n_blocks)


class Pursuit(NamedTuple):
    """What :func:`omp` returns: k coefficients per row, in the order the atoms were chosen."""

    acts: Tensor
    """(B, k) coefficients; 0 in the slots after a row stopped early (and > 0 with ``nonneg``)."""
    indices: Tensor
    """(B, k) int64 atom ids, distinct within a row wherever ``acts`` is non-zero."""


def _best_atom(alpha3: Tensor, signed: bool) -> tuple[Tensor, Tensor]:
    """The atom with the largest correlation per row (largest |correlation| if ``signed``).

    alpha3: (B, Hp / n_blocks, n_blocks), the correlations viewed one block per column.
    Returns atom ids (B,) int64 and their correlations (B,).
    """
    B, size, n_blocks = alpha3.shape
    block_max = alpha3.amax(1)  # (B, n_blocks)
    if signed:
        block_max = torch.maximum(block_max, alpha3.amin(1).neg_())
    block = block_max.max(1).indices  # torch.max is faster than argmax on short rows
    column = alpha3.gather(2, block.view(B, 1, 1).expand(B, size, 1)).view(B, size)  # the block's atoms
    if signed:
        within = column.abs().max(1).indices
        value = column.gather(1, within.unsqueeze(1)).squeeze(1)
    else:
        value, within = column.max(1)
    return within * n_blocks + block, value


@torch.no_grad()
def omp(target: Tensor, dictionary: Dictionary | Tensor, k: int, nonneg: bool = False) -> Pursuit:
    """k-sparse codes of ``target`` (B, D) over a dictionary of H atoms by OMP.

    ``dictionary`` is a :class:`Dictionary` (prepare it once when coding many batches) or the
    (H, D) atoms; they need not have unit norm. The arithmetic is done in the dtype of ``target``.
    """
    if not isinstance(dictionary, Dictionary) or dictionary.atoms.dtype != target.dtype:
        atoms = dictionary.atoms[: dictionary.n_atoms] if isinstance(dictionary, Dictionary) else dictionary
        dictionary = Dictionary.of(atoms.to(target.dtype))
    atoms, gram, _, _, n_blocks = dictionary
    B = target.shape[0]
    Hp = atoms.shape[0]
    dtype, device = target.dtype, target.device
    diag = gram.diagonal().contiguous()
    gram_flat = gram.view(-1)
    # A new atom whose squared distance to the span of the chosen ones is below this is dependent.
    tol = torch.finfo(dtype).eps * 16

    alpha = target @ atoms.T  # (B, Hp) correlations of the residual with every atom
    alpha3 = alpha.view(B, Hp // n_blocks, n_blocks)
    indices = torch.zeros(B, k, dtype=torch.int64, device=device)
    coefs = torch.zeros(B, k, dtype=dtype, device=device)
    r_inv = torch.zeros(B, k, k, dtype=dtype, device=device)  # upper triangular, grown a column a step
    alive = torch.ones(B, dtype=torch.bool, device=device)  # rows still adding atoms

    for s in range(k):
        atom, score = _best_atom(alpha3, signed=not nonneg)  # (B,) each
        r_prev = r_inv[:, :s, :s]
        # c[b, t] = <q_t, w_atom>: the atom's coordinates in the orthonormal basis Q of the support.
        g = gram_flat.take(indices[:, :s] + (atom * Hp).unsqueeze(1))  # (B, s) = G[atom, support]
        c = (g.unsqueeze(1) @ r_prev).squeeze(1)
        atom_norm2 = diag[atom]
        dist2 = atom_norm2 - (c * c).sum(1)  # (B,) squared distance of the atom to the span
        inv_dist = dist2.clamp_min(tol).rsqrt()
        proj = score * inv_dist  # (B,) <target, q_new>: the residual is orthogonal to the support
        col = (c.unsqueeze(1) @ r_prev.mT).squeeze(1) * (-inv_dist).unsqueeze(1)  # (B, s) Rinv's new column
        # Stop a row when its best atom is dependent on the chosen ones. An atom chosen again can only
        # win when the residual is zero to rounding (its own correlation is zero up to rounding).
        alive &= (dist2 > tol * atom_norm2) & (indices[:, :s] != atom.unsqueeze(1)).all(1)
        if nonneg:
            # A positive correlation, and the refitted coefficients of the support stay > 0.
            alive &= (score > 0) & (coefs[:, :s] + proj.unsqueeze(1) * col > 0).all(1)
        else:
            alive &= score != 0
        keep = alive.to(dtype)
        r_inv[:, :s, s] = col * keep.unsqueeze(1)
        r_inv[:, s, s] = keep * inv_dist
        indices[:, s] = atom
        delta = proj.unsqueeze(1) * r_inv[:, : s + 1, s]  # (B, s+1) change of the coefficients
        coefs[:, : s + 1] += delta
        if s + 1 == k:
            break
        _update_correlations(alpha, target, dictionary, indices[:, : s + 1], coefs[:, : s + 1], delta)
    return Pursuit(coefs, indices)


def _update_correlations(alpha: Tensor, target: Tensor, dictionary: Dictionary, support: Tensor, coefs: Tensor,
                         delta: Tensor) -> None:
    """Bring ``alpha`` (B, Hp), the correlations of the residual with every atom, up to date in
    place after the coefficients of the (B, s) ``support`` changed by ``delta`` to ``coefs``."""
    if support.shape[1] * BAG_RATIO < target.shape[1]:
        # Correlations change by -G[:, S] @ delta: s rows of the Gram matrix per row.
        start = 0
        for columns in dictionary.gram_columns:
            width = columns.shape[1]
            alpha[:, start : start + width] -= F.embedding_bag(support, columns, per_sample_weights=delta, mode="sum")
            start += width
    else:
        # Beyond D / BAG_RATIO rows, recomputing them from the residual is cheaper: one dense product.
        reconstruction = F.embedding_bag(support, dictionary.atoms, per_sample_weights=coefs, mode="sum")
        torch.mm(target - reconstruction, dictionary.atoms.T, out=alpha)


class PursuitCoder:
    """OMP codes of vectors on the original scale over a model's decoder, in the encoder's scale.

    :meth:`encode` is a drop-in for ``SparseAutoencoder.encode``: it returns ``acts`` and
    ``indices`` (B, k), and the (single-layer) model's reconstruction contract holds for them,
    ``x ≈ (z @ W_dec + b_dec) * input_scale + input_mean``, because pursuit codes the normalised
    target ``(x - input_mean) / input_scale - b_dec`` over the rows of ``W_dec``.
    """

    def __init__(self, model: "SparseAutoencoder", nonneg: bool = False):
        self.model, self.nonneg = model, nonneg
        self.dictionary = Dictionary.of(model.W_dec.detach())

    @torch.no_grad()
    def encode(self, x: Tensor, k: int) -> Pursuit:
        """Codes of (B, D) vectors on the original scale, k atoms at most per row."""
        target = self.model.normalise(x) - self.model.b_dec
        rows = CPU_ROWS if target.device.type == "cpu" else max(target.shape[0], 1)
        parts = [omp(part, self.dictionary, k, self.nonneg) for part in target.split(rows)]
        if len(parts) == 1:
            return parts[0]
        return Pursuit(torch.cat([p.acts for p in parts]), torch.cat([p.indices for p in parts]))


def check_method(method: str, nonneg: bool) -> None:
    """A ``method`` of :data:`METHODS`, and ``nonneg`` only with ``omp``."""
    need(method in METHODS, "method", "{method} {got!r} is unknown; use one of {names}", got=method, names=", ".join(METHODS))
    need(not nonneg or method == "omp", "nonneg",
         "{nonneg} applies to {method} omp only; the encoder's codes are non-negative already")


def check_pursuit(model: "SparseAutoencoder", k: int | None, where: str = "") -> None:
    """Whether OMP can code ``k`` atoms per row over ``model``'s decoder: a k (a model of an
    objective without one gives none), the single-layer model, at most D atoms. ``where``
    begins the messages (``"RUN_DIR: "``)."""
    need(k is not None, "k", "{where}{method} omp needs {k} for a model trained with {sparsity} {got}",
         where=where, got=model.sparsity)
    _check_dictionary(model, where)
    need(k <= model.d_in, "k", "{k} {got} is larger than the {dims} input dimensions; pursuit can use at most {dims} atoms",
         got=k, dims=model.d_in)


def _check_dictionary(model: "SparseAutoencoder", where: str = "") -> None:
    """Pursuit needs a decoder that is a dictionary: the single-layer model's."""
    need(model.is_linear, "method", "{where}{method} omp needs the single-layer model (its decoder is not a dictionary "
         "with {encoder_layers}); encode with {method} encoder", where=where)


def make_coder(model: "SparseAutoencoder", method: str = "encoder", nonneg: bool = False):
    """What computes the codes: the model itself (its encoder) or a :class:`PursuitCoder`.

    Either has ``encode(x, k)`` returning ``acts`` and ``indices`` (B, k) for (B, D) vectors.
    """
    check_method(method, nonneg)
    if method == "omp":
        _check_dictionary(model)
        return PursuitCoder(model, nonneg)
    return model
