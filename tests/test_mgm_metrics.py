"""GuacaMol distribution-learning metrics (metrics/molecules.py) on sets with known answers."""
import math
import random

import numpy as np
import pytest

from iterref_fairseq.metrics import molecules as MM
from test_mgm_data import qm9_smiles


@pytest.fixture(scope="module")
def train():
    smiles = qm9_smiles(300, seed=1)
    return smiles + smiles[:20]  # with duplicates, so uniqueness < 1


def test_training_set_against_itself(train):
    assert MM.validity(train) == 1.0
    expected_unique = len({MM.canonical(s) for s in train}) / len(train)
    assert MM.uniqueness(train) == pytest.approx(expected_unique) and expected_unique < 1
    assert MM.novelty(train, train) == 0.0
    kl = MM.kl_divergence_score(train, train)
    assert kl["score"] == pytest.approx(1.0, abs=1e-6)
    assert set(kl["kl"]) == set(MM.CONTINUOUS_DESCRIPTORS + MM.DISCRETE_DESCRIPTORS) | {"internal_similarity"}


def test_invalid_strings_have_zero_validity():
    bad = ["C1CC", "xyz", "", "INVALID", "C(C"]
    assert MM.validity(bad) == 0.0
    assert MM.uniqueness(bad) == 0.0 and MM.novelty(bad, ["CCO"]) == 0.0
    assert MM.validity(bad + ["CCO"]) == pytest.approx(1 / 6)


def test_novelty_counts_unique_unseen(train):
    samples = [train[0], train[0], "CCCCCCCCCCCCCCCC", "OCCCCCCCCCCCCCCCC"]
    assert MM.uniqueness(samples) == pytest.approx(3 / 4)
    assert MM.novelty(samples, train) == pytest.approx(2 / 3)


def test_uniqueness_and_novelty_on_hand_made_sets_with_stereocentres():
    """Known answers, counted by hand. GuacaMol compares molecules without stereo: the two enantiomers of
    1-aminoethanol (C[C@H](N)O, C[C@@H](N)O) and its stereo-free form are one molecule, so 3 valid samples give
    1 unique molecule, which is not novel against a reference holding any form of it."""
    stereo = ["C[C@H](N)O", "C[C@@H](N)O", "CC(N)O"]
    assert MM.uniqueness(stereo) == pytest.approx(1 / 3)
    assert MM.novelty(stereo, ["NC(C)O"]) == 0.0
    assert MM.novelty(stereo, ["C[C@H](N)O"]) == 0.0  # a stereo reference matches every isomer too
    # ethanol written three ways + ethylamine + one invalid string: 4 valid, 2 unique, 1 of them novel
    samples = ["CCO", "OCC", "C(C)O", "CCN", "C1CC"]
    assert MM.validity(samples) == pytest.approx(4 / 5)
    assert MM.uniqueness(samples) == pytest.approx(2 / 4)
    assert MM.novelty(samples, ["OCC", "CCCC"]) == pytest.approx(1 / 2)
    # cis/trans isomers of but-2-ene are one molecule without stereo
    assert MM.uniqueness(["C/C=C/C", "C/C=C\\C"]) == pytest.approx(1 / 2)


def test_kl_score_drops_for_a_different_distribution(train):
    alkanes = ["C" * n for n in range(2, 30)] + ["C" * n + "O" for n in range(2, 30)]
    assert MM.kl_divergence_score(alkanes, train)["score"] < 0.5


def test_discrete_and_continuous_kl_are_zero_for_identical_samples():
    x = np.random.default_rng(0).normal(size=200)
    assert MM.continuous_kl(x, x) == pytest.approx(0.0, abs=1e-9)
    assert MM.discrete_kl(np.round(x), np.round(x)) == pytest.approx(0.0, abs=1e-9)
    assert MM.continuous_kl(x, x + 3) > 1.0
    # samples entirely outside the reference's histogram range: a finite divergence (GuacaMol's epsilon
    # smoothing makes Q uniform), not NaN
    far = MM.discrete_kl(np.round(x), np.full(5, 100.0))
    assert np.isfinite(far) and far > MM.discrete_kl(np.round(x), np.round(x[:100]))


def test_fcd_of_a_set_with_itself_is_about_zero(train):
    subset = train[:120]
    same = MM.fcd_score(subset, subset, device="cpu")
    assert abs(same["fcd"]) < 1e-2 and same["score"] == pytest.approx(1.0, abs=2e-3)
    other = MM.fcd_score(["C" * n + "O" for n in range(2, 40)] * 3, subset, device="cpu")
    assert other["fcd"] > 5.0 and other["score"] == pytest.approx(math.exp(-0.2 * other["fcd"]))


def test_distribution_metrics_keys(train):
    out = MM.distribution_metrics(train[:50] + ["C1CC"], train, max_reference=100, with_fcd=False)
    assert out["validity"] == pytest.approx(50 / 51) and out["novelty"] == 0.0
    assert {"uniqueness", "kl_div", "kl_per_descriptor"} <= set(out) and "frechet" not in out


def test_discrete_kl_matches_a_hand_computed_value():
    # reference: half the mass in the first of 10 unit bins on [0, 10], half in the last; samples: 0.8 / 0.2.
    # D_KL(P || Q) = 0.5 ln(0.5 / 0.8) + 0.5 ln(0.5 / 0.2) = 0.5 ln(1.5625)
    ref = np.array([0.0] * 5 + [10.0] * 5)
    gen = np.array([0.0] * 8 + [10.0] * 2)
    assert MM.discrete_kl(ref, gen) == pytest.approx(0.5 * math.log(1.5625), abs=1e-6)


def test_frechet_distance_matches_the_closed_form_for_diagonal_covariances():
    # act1: mean 0, covariance diag(2/3, 2/3) (n - 1 = 3); act2 = 2 act1 + (3, 4): mean (3, 4), covariance
    # diag(8/3, 8/3). FD = |mu1 - mu2|^2 + sum_d (s1 + s2 - 2 sqrt(s1 s2)) = 25 + 2 (10/3 - 8/3) = 25 + 4/3
    act1 = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    act2 = 2 * act1 + np.array([3.0, 4.0])
    assert MM.frechet_distance(act1, act2) == pytest.approx(25 + 4 / 3, abs=1e-6)
