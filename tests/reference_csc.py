"""An independent float64 NumPy reference for the CSC layer, on tiny sizes.

The dictionary operator is built as an explicit dense matrix by index arithmetic (no convolution
routine), and the solvers are textbook ISTA/FISTA (Beck & Teboulle, 2009) on that matrix.
Nothing here imports sdnet.
"""

from __future__ import annotations

import numpy as np


def synthesis_matrix(weight: np.ndarray, input_size: tuple[int, int], stride: int, padding: int) -> np.ndarray:
    """Dense ``A`` with ``x_hat = A @ z.ravel()``: each code entry adds its atom into the image.

    Code entry (o, i, j) places atom ``weight[o]`` with its top-left corner at image position
    (i*stride - padding, j*stride - padding); parts falling outside the image are dropped (zero
    padding). Code size is that of ``conv2d`` on an image of ``input_size``.
    """
    c_out, c_in, kh, kw = weight.shape
    h, w = input_size
    ch, cw = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    A = np.zeros((c_in * h * w, c_out * ch * cw))
    for o in range(c_out):
        for i in range(ch):
            for j in range(cw):
                col = (o * ch + i) * cw + j
                for c in range(c_in):
                    for a in range(kh):
                        for b in range(kw):
                            y, x = i * stride - padding + a, j * stride - padding + b
                            if 0 <= y < h and 0 <= x < w:
                                A[(c * h + y) * w + x, col] += weight[o, c, a, b]
    return A


def prox(v: np.ndarray, lam: float, mu: float, t: float, non_negative: bool) -> np.ndarray:
    """argmin_z t*(lam|z| + mu/2 z^2 + indicator(z>=0)) + 1/2 (z - v)^2, elementwise."""
    shrunk = np.maximum(v - lam * t, 0) if non_negative else np.sign(v) * np.maximum(np.abs(v) - lam * t, 0)
    return shrunk / (1 + mu * t)


def fista(A: np.ndarray, x: np.ndarray, t: float, lam: float, mu: float, n_steps: int, non_negative: bool) -> np.ndarray:
    """Beck & Teboulle FISTA from z = 0 with ``n_steps`` proximal gradient evaluations.

    y_1 = z_0 = 0, t_1 = 1;  z_k = prox(y_k - t A^T(A y_k - x));
    t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2;  y_{k+1} = z_k + (t_k - 1)/t_{k+1} (z_k - z_{k-1}).
    """
    z_prev = z = np.zeros(A.shape[1])
    y, tk = z, 1.0
    for _ in range(n_steps):
        z_prev, z = z, prox(y - t * A.T @ (A @ y - x), lam, mu, t, non_negative)
        tk_next = (1 + np.sqrt(1 + 4 * tk * tk)) / 2
        y = z + (tk - 1) / tk_next * (z - z_prev)
        tk = tk_next
    return z


def objective(A: np.ndarray, x: np.ndarray, z: np.ndarray, lam: float, mu: float) -> float:
    return float(lam * np.abs(z).sum() + mu / 2 * (z @ z) + 0.5 * np.sum((x - A @ z) ** 2))


def lipschitz(A: np.ndarray) -> float:
    """Exact largest eigenvalue of A^T A."""
    return float(np.linalg.eigvalsh(A.T @ A).max())
