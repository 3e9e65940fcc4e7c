"""HiPPO-based initialisation of the diagonal S5 state matrix (pure numpy).

Follows Smith, Warrington & Linderman, "Simplified State Space Layers for Sequence
Modeling" (ICLR 2023), reference code lindermanlab/S5 ``s5/ssm_init.py``. Everything here
runs once, on the host, when a backbone is built: none of it is traced into the training
update, which is one reason S5 compiles in seconds here rather than minutes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class DiagonalHiPPO(NamedTuple):
    """The diagonalised HiPPO-LegS matrix used to initialise S5.

    Attributes:
      eigenvalues: ``[P]`` complex128, the continuous-time diagonal state matrix Lambda.
      eigenvectors: ``[N, P]`` complex128, V (columns are eigenvectors).
      eigenvectors_inv: ``[P, N]`` complex128, V^{-1} = V^H (V is unitary).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    eigenvectors_inv: np.ndarray


def make_hippo_legs(n: int) -> np.ndarray:
    """The HiPPO-LegS matrix A, ``[n, n]`` float64 (negative lower-triangular)."""
    p = np.sqrt(1 + 2 * np.arange(n))
    a = p[:, None] * p[None, :]
    a = np.tril(a) - np.diag(np.arange(n))
    return -a


def make_dplr_hippo(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Diagonalise the normal part of HiPPO-LegS (the DPLR form of S4/S5).

    HiPPO-LegS is normal plus low-rank: ``A = S - p p^T`` with ``S`` normal. Its skew-
    symmetric part gives the imaginary eigenvalues; the real part is the mean of the
    diagonal, exactly as in the reference implementation.

    Returns:
      ``(eigenvalues [n] complex128, eigenvectors [n, n] complex128)``.
    """
    a = make_hippo_legs(n)
    p = np.sqrt(np.arange(n) + 0.5)
    s = a + p[:, None] * p[None, :]
    real = np.mean(np.diagonal(s)) * np.ones(n)
    imag, v = np.linalg.eigh(s * -1j)
    return real + 1j * imag, v


def make_s5_init(state_size: int, blocks: int = 1, conj_sym: bool = True) -> DiagonalHiPPO:
    """The S5 initial Lambda and V for ``state_size`` states split into ``blocks`` blocks.

    With conjugate symmetry only one eigenvalue of each conjugate pair is kept, halving
    the number of complex states: the output is then ``2 * Re(C x)``.

    Args:
      state_size: P, the number of (real-equivalent) states; divisible by ``blocks``
        (and the block size by 2 when ``conj_sym``).
      blocks: how many HiPPO blocks make up the block-diagonal initialisation.
      conj_sym: keep half of each conjugate pair.

    Returns:
      A ``DiagonalHiPPO`` with ``state_size // 2`` states when ``conj_sym``.
    """
    if state_size % blocks:
        raise ValueError(f"state_size {state_size} is not divisible by blocks {blocks}")
    block_size = state_size // blocks
    eigenvalues, v = make_dplr_hippo(block_size)
    if conj_sym:
        if block_size % 2:
            raise ValueError(f"conjugate symmetry needs an even block size, got {block_size}")
        block_size //= 2
    eigenvalues = eigenvalues[:block_size]
    v = v[:, :block_size]
    v_inv = v.conj().T
    lam = np.tile(eigenvalues, blocks)
    big_v = _block_diag([v] * blocks)
    big_v_inv = _block_diag([v_inv] * blocks)
    return DiagonalHiPPO(lam, big_v, big_v_inv)


def _block_diag(mats: list[np.ndarray]) -> np.ndarray:
    rows = sum(m.shape[0] for m in mats)
    cols = sum(m.shape[1] for m in mats)
    out = np.zeros((rows, cols), dtype=mats[0].dtype)
    r = c = 0
    for m in mats:
        out[r : r + m.shape[0], c : c + m.shape[1]] = m
        r += m.shape[0]
        c += m.shape[1]
    return out
