"""Quality of generated samples ("dreams") against real ones, in a feature space.

Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019): each set of feature vectors
spans a manifold, the union of balls around its points whose radius is the distance to the
point's k-th nearest neighbour within its own set. Precision is the share of generated points
inside the real manifold (are dreams realistic?); recall the share of real points inside the
generated manifold (do dreams cover the variety of the real data?). Distances are Euclidean.

Examples
--------
>>> import numpy as np
>>> real = np.random.default_rng(0).normal(size=(200, 2))
>>> manifold_precision_recall(real, real, k=3)
(1.0, 1.0)
>>> precision, recall = manifold_precision_recall(real, real[real[:, 0] > 0], k=3)
>>> precision, recall < 0.7
(1.0, True)
"""

from __future__ import annotations

import numpy as np


def _radii(points: np.ndarray, k: int) -> np.ndarray:
    """Distance of every point to its k-th nearest neighbour among the others."""
    d = _distances(points, points)
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0))


def _inside(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    """Share of ``points`` within the radius of at least one of ``centres``."""
    return float((_distances(points, centres) <= radii[None, :]).any(axis=1).mean())


def manifold_precision_recall(
    real: np.ndarray, fake: np.ndarray, k: int = 3
) -> tuple[float, float]:
    """(precision, recall) of ``fake`` [n × d] against ``real`` [m × d], k-NN radii (k < n, m);
    the paper uses k = 3 and equal set sizes."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"need more than k = {k} points in each set ({len(real)}, {len(fake)})")
    precision = _inside(fake, real, _radii(real, k))
    recall = _inside(real, fake, _radii(fake, k))
    return precision, recall
