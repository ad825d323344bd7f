import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from recgraph.data.sampling import is_positive, positive_keys, sample_negatives


def random_positives(n_users=200, n_items=300, density=0.3, seed=0):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density  # small test matrix only
    return sp.csr_matrix(mask.astype(np.float32))


@pytest.mark.parametrize("strategy", ["uniform", "popularity"])
def test_no_negative_is_positive(strategy):
    pos = random_positives()
    users = np.random.default_rng(1).integers(0, 200, 5000)
    neg = sample_negatives(users, 300, pos, 20, strategy=strategy, rng=0)
    assert neg.shape == (5000, 20) and neg.dtype == np.int64
    dense = pos.toarray().astype(bool)
    assert not dense[np.repeat(users, 20), neg.ravel()].any()
    assert neg.min() >= 0 and neg.max() < 300


def test_nearly_full_user_gets_exact_complement():
    n_items = 50
    rows = np.zeros(49, np.int64)
    cols = np.arange(49)  # user 0 has every item but 49
    pos = sp.csr_matrix((np.ones(49), (rows, cols)), shape=(2, n_items))
    neg = sample_negatives(np.array([0, 1]), n_items, pos, 10, rng=0, max_rounds=2)
    assert (neg[0] == 49).all()


def test_user_without_possible_negative_raises():
    pos = sp.csr_matrix(np.ones((2, 5)))
    with pytest.raises(ValueError, match="no possible negative"):
        sample_negatives(np.array([0]), 5, pos, 3, rng=0)
    # popularity: items with zero popularity cannot be sampled, so user 0 (all popular items) is full
    pos = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 0]], dtype=float))
    with pytest.raises(ValueError, match="no possible negative"):
        sample_negatives(np.array([0]), 3, pos, 3, strategy="popularity",
                         item_popularity=np.array([5.0, 1.0, 0.0]), rng=0)


def test_popularity_frequencies_follow_popularity():
    n_items = 100
    pop = np.arange(1, n_items + 1, dtype=float) ** 1.5
    pos = sp.csr_matrix((10, n_items))  # no positives → pure popularity sampling
    users = np.zeros(20000, np.int64)
    neg = sample_negatives(users, n_items, pos, 5, strategy="popularity", item_popularity=pop, rng=42)
    counts = np.bincount(neg.ravel(), minlength=n_items)
    expected = pop / pop.sum() * counts.sum()
    chi2, p = stats.chisquare(counts, expected)
    assert p > 1e-4, (chi2, p)
    assert stats.spearmanr(counts, pop).statistic > 0.9
    # and uniform is not popularity-shaped
    uni = sample_negatives(users, n_items, pos, 5, rng=42)
    _, p_uni = stats.chisquare(np.bincount(uni.ravel(), minlength=n_items), expected)
    assert p_uni < 1e-6


def test_popularity_excludes_positives_and_renormalises():
    n_items = 20
    pop = np.ones(n_items)
    pop[0] = 1000.0  # item 0 dominates but is a positive of user 0
    pos = sp.csr_matrix((np.ones(1), ([0], [0])), shape=(1, n_items))
    neg = sample_negatives(np.zeros(2000, np.int64), n_items, pos, 3, strategy="popularity",
                           item_popularity=pop, rng=0)
    assert not (neg == 0).any()
    counts = np.bincount(neg.ravel(), minlength=n_items)[1:]
    _, p = stats.chisquare(counts)
    assert p > 1e-4


def test_keys_membership():
    pos = random_positives(20, 30)
    keys = positive_keys(pos)
    assert np.all(np.diff(keys) > 0)
    u, i = np.nonzero(np.ones((20, 30)))
    assert np.array_equal(is_positive(u, i, keys, 30), pos.toarray().astype(bool)[u, i])
