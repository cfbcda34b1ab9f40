from pathlib import Path

import numpy as np
from model import fit, load, rmse

DATA = Path(__file__).parent.parent / "data"


def test_data_has_features_and_target():
    x, y = load(DATA / "train.csv")
    assert x.shape[1] == 2 and len(x) == len(y) > 10


def test_fit_recovers_a_known_line():
    x = np.linspace(0, 1, 50).reshape(-1, 1)
    y = 3 * x[:, 0] + 1
    weights = fit(x, y, seed=1, epochs=300, learning_rate=0.1)
    assert np.allclose(weights, [3, 1], atol=0.05)


def test_same_seed_same_model():
    x, y = load(DATA / "train.csv")
    first = fit(x, y, seed=7, epochs=5, learning_rate=0.01)
    second = fit(x, y, seed=7, epochs=5, learning_rate=0.01)
    assert np.array_equal(first, second)


def test_model_beats_predicting_the_mean():
    x, y = load(DATA / "train.csv")
    weights = fit(x, y, seed=7, epochs=40, learning_rate=0.01)
    assert rmse(weights, x, y) < float(np.std(y))
