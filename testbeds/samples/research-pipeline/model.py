"""A small linear model fitted by gradient descent: deterministic for a given seed."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Features and targets from a CSV whose last column is the target."""
    with path.open() as handle:
        rows = [[float(v) for v in row] for row in csv.reader(handle) if row and row[0][0] != "#"]
    data = np.asarray(rows)
    return data[:, :-1], data[:, -1]


def fit(x: np.ndarray, y: np.ndarray, seed: int, epochs: int, learning_rate: float) -> np.ndarray:
    """Weights (bias last) of a least-squares fit, from seeded initial weights and shuffles."""
    rng = np.random.default_rng(seed)
    design = np.hstack([x, np.ones((len(x), 1))])
    weights = rng.normal(scale=0.1, size=design.shape[1])
    for _ in range(epochs):
        for i in rng.permutation(len(design)):
            error = design[i] @ weights - y[i]
            weights -= learning_rate * error * design[i]
    return weights


def predict(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((len(x), 1))]) @ weights


def rmse(weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predict(weights, x) - y) ** 2)))
