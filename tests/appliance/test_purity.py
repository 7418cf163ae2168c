import numpy as np
import pytest

from appliance.purity import (
    STATEMENT,
    PurityEstimate,
    UnclassifiedSeed,
    UnknownSeedClass,
    class_counts,
    corrected_purity,
    purity_by_count,
    purity_by_weight,
    purity_by_weight_estimate,
    summarise,
    wilson_interval,
)

CLASSES = ("pure", "broken", "discolored", "silkcut")
PURE_MASK = (True, False, False, False)
TRUE_SHARES = np.array([0.70, 0.15, 0.10, 0.05])
#: P(predicted | true): 5-10% errors, pure seed lost to the defects more often
#: than defects pass as pure, so raw purity by count reads low.
TRUE_RATES = np.array(
    [
        [0.90, 0.04, 0.04, 0.02],
        [0.05, 0.90, 0.03, 0.02],
        [0.05, 0.03, 0.90, 0.02],
        [0.04, 0.03, 0.03, 0.90],
    ]
)
VALIDATION_PER_CLASS = 300
SAMPLE_N = 200
N_SIMULATED = 20


def _simulated_sample(rng):
    """Predicted counts of one sample and a validation confusion matrix."""
    true_counts = rng.multinomial(SAMPLE_N, TRUE_SHARES)
    predicted = sum(
        rng.multinomial(k, TRUE_RATES[i]) for i, k in enumerate(true_counts)
    )
    confusion = np.stack(
        [rng.multinomial(VALIDATION_PER_CLASS, row) for row in TRUE_RATES]
    )
    return predicted, confusion


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(7)
    out = []
    for _ in range(N_SIMULATED):
        predicted, confusion = _simulated_sample(rng)
        raw = 100.0 * predicted[0] / predicted.sum()
        corrected = corrected_purity(predicted, confusion, PURE_MASK, seed=0)
        out.append((predicted, confusion, raw, corrected))
    return out


def test_wilson_interval_matches_textbook_values():
    low, high = wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=1e-4)
    assert high == pytest.approx(0.3662, abs=1e-4)

    low, high = wilson_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)

    low, high = wilson_interval(10, 10)
    assert high == 1.0
    assert low == pytest.approx(0.7225, abs=1e-4)


def test_wilson_interval_of_no_trials_is_the_whole_range():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_widens_with_confidence():
    lo90, hi90 = wilson_interval(30, 100, confidence=0.90)
    lo99, hi99 = wilson_interval(30, 100, confidence=0.99)
    assert lo99 < lo90 < 0.3 < hi90 < hi99


def test_wilson_interval_refuses_impossible_counts():
    with pytest.raises(ValueError, match="successes=11"):
        wilson_interval(11, 10)


def test_wilson_interval_covers_the_true_proportion_about_95_percent():
    rng = np.random.default_rng(0)
    p, n = 0.9, 200
    draws = rng.binomial(n, p, size=2000)
    covered = sum(
        lo <= p <= hi for lo, hi in (wilson_interval(int(k), n) for k in draws)
    )
    assert 0.93 <= covered / 2000 <= 0.97


def test_purity_by_count_is_the_share_of_pure_seeds():
    est = purity_by_count([True] * 81 + [False] * 182)
    assert est.value_pct == pytest.approx(100 * 81 / 263)
    assert est.ci95_pct == pytest.approx((25.53, 36.62), abs=0.01)


def test_purity_by_count_refuses_an_empty_sample():
    with pytest.raises(ValueError, match="at least one seed"):
        purity_by_count([])


def test_by_weight_equals_by_count_when_all_areas_are_equal():
    rng = np.random.default_rng(1)
    is_pure = list(rng.random(150) < 0.8)
    by_count = purity_by_count(is_pure)
    pct, _ = purity_by_weight(is_pure, [12.0] * 150, mass_mg_per_mm2=0.3)
    est = purity_by_weight_estimate(is_pure, [12.0] * 150, mass_mg_per_mm2=0.3)
    assert pct == pytest.approx(by_count.value_pct)
    assert est.value_pct == pytest.approx(by_count.value_pct)


def test_heavier_pure_seeds_raise_purity_by_weight():
    is_pure = [True] * 50 + [False] * 50
    pct, _ = purity_by_weight(is_pure, [20.0] * 50 + [10.0] * 50, mass_mg_per_mm2=0.3)
    assert pct == pytest.approx(100 * 20**1.5 / (20**1.5 + 10**1.5))
    assert pct > 50.0


def test_estimated_mass_follows_the_area_power_law():
    _, mass_g = purity_by_weight(
        [True, False], [4.0, 9.0], mass_mg_per_mm2=2.0, mass_exponent=1.5
    )
    assert mass_g == pytest.approx((2.0 * 8.0 + 2.0 * 27.0) / 1000.0)


def test_weight_interval_is_deterministic_and_brackets_the_estimate():
    rng = np.random.default_rng(2)
    is_pure = list(rng.random(200) < 0.85)
    area = list(rng.uniform(8.0, 16.0, 200))
    a = purity_by_weight_estimate(is_pure, area, mass_mg_per_mm2=0.3)
    b = purity_by_weight_estimate(is_pure, area, mass_mg_per_mm2=0.3)
    assert a == b
    low, high = a.ci95_pct
    assert low < a.value_pct < high
    # Similar in width to the count interval for a similar sample.
    by_count = purity_by_count(is_pure)
    width_count = by_count.ci95_pct[1] - by_count.ci95_pct[0]
    assert 0.7 < (high - low) / width_count < 1.4


def test_weight_refuses_non_positive_areas():
    with pytest.raises(ValueError, match="finite and > 0"):
        purity_by_weight([True, False], [10.0, 0.0], mass_mg_per_mm2=0.3)


def test_corrected_purity_equals_raw_with_a_perfect_classifier():
    counts = [140, 30, 20, 10]
    est = corrected_purity(counts, np.diag([300, 300, 300, 300]), PURE_MASK)
    assert est.value_pct == pytest.approx(70.0, abs=1e-6)
    low, high = est.ci95_pct
    assert low < 70.0 < high


def test_corrected_purity_recovers_the_true_purity(simulated):
    raw = np.array([r for _, _, r, _ in simulated])
    corrected = np.array([c.value_pct for _, _, _, c in simulated])
    truth = 100 * TRUE_SHARES[0]
    assert abs(corrected.mean() - truth) < 1.5
    # Raw purity reads low by about 5 points with these error rates.
    assert raw.mean() < truth - 3.0
    assert np.abs(corrected - truth).mean() < np.abs(raw - truth).mean()


def test_corrected_interval_covers_the_truth(simulated):
    truth = 100 * TRUE_SHARES[0]
    covered = sum(c.ci95_pct[0] <= truth <= c.ci95_pct[1] for *_, c in simulated)
    assert covered >= 17


def test_corrected_interval_is_deterministic_for_a_seed(simulated):
    predicted, confusion, _, first = simulated[0]
    again = corrected_purity(predicted, confusion, PURE_MASK, seed=0)
    other = corrected_purity(predicted, confusion, PURE_MASK, seed=1)
    assert again == first
    assert other.value_pct == first.value_pct
    assert other.ci95_pct != first.ci95_pct


def test_corrected_purity_treats_an_empty_confusion_row_as_perfect():
    confusion = np.array(
        [[270, 12, 12, 6], [15, 270, 9, 6], [15, 9, 270, 6], [0, 0, 0, 0]]
    )
    est = corrected_purity([130, 35, 25, 10], confusion, PURE_MASK, n_boot=200)
    assert 0.0 <= est.ci95_pct[0] <= est.value_pct <= est.ci95_pct[1] <= 100.0


def test_corrected_purity_refuses_rates_in_place_of_counts():
    with pytest.raises(ValueError, match="not rates"):
        corrected_purity([140, 30, 20, 10], TRUE_RATES, PURE_MASK)


def test_class_counts_follow_the_class_order():
    counts = class_counts(CLASSES, ["silkcut", "pure", "pure", "broken"])
    assert list(counts) == list(CLASSES)
    assert counts == {"pure": 2, "broken": 1, "discolored": 0, "silkcut": 1}


def test_unknown_class_names_are_refused_by_name():
    with pytest.raises(UnknownSeedClass, match="weed"):
        class_counts(CLASSES, ["pure", "weed"])
    with pytest.raises(ValueError, match="weed"):
        summarise(
            ["pure", "weed"],
            [10.0, 10.0],
            classes=CLASSES,
            pure_classes=["pure"],
            confusion=None,
            mass_mg_per_mm2=0.3,
        )


def test_unclassified_seeds_are_refused():
    with pytest.raises(UnclassifiedSeed, match="no class"):
        summarise(
            ["pure", None],
            [10.0, 10.0],
            classes=CLASSES,
            pure_classes=["pure"],
            confusion=None,
            mass_mg_per_mm2=0.3,
        )
    assert issubclass(UnclassifiedSeed, ValueError)


def _sample_summary(confusion):
    rng = np.random.default_rng(3)
    labels = list(rng.choice(CLASSES, size=SAMPLE_N, p=TRUE_SHARES))
    area = list(rng.uniform(8.0, 16.0, SAMPLE_N))
    return summarise(
        labels,
        area,
        classes=CLASSES,
        pure_classes=["pure"],
        confusion=confusion,
        mass_mg_per_mm2=0.31,
    )


def _decimals(x):
    return len(repr(float(x)).split(".")[1])


def test_summary_json_has_exactly_the_report_keys_rounded_to_one_decimal():
    confusion = np.rint(TRUE_RATES * VALIDATION_PER_CLASS).astype(int)
    doc = _sample_summary(confusion).to_json()

    assert list(doc) == [
        "n_seeds",
        "counts",
        "shares_pct",
        "purity_by_count",
        "purity_by_weight_pct",
        "purity_by_weight",
        "estimated_mass_g",
        "purity_corrected",
        "statement",
    ]
    assert doc["statement"] == STATEMENT
    assert doc["n_seeds"] == SAMPLE_N == sum(doc["counts"].values())
    assert list(doc["counts"]) == list(CLASSES)
    assert sum(doc["shares_pct"].values()) == pytest.approx(100.0, abs=0.2)
    for est in (
        doc["purity_by_count"],
        doc["purity_by_weight"],
        doc["purity_corrected"],
    ):
        assert set(est) == {"value_pct", "ci95_pct"}
        assert len(est["ci95_pct"]) == 2
        for x in (est["value_pct"], *est["ci95_pct"]):
            assert _decimals(x) == 1
    for x in (doc["purity_by_weight_pct"], *doc["shares_pct"].values()):
        assert _decimals(x) == 1
    assert doc["purity_by_weight_pct"] == doc["purity_by_weight"]["value_pct"]


def test_summary_without_confusion_reports_no_corrected_purity():
    summary = _sample_summary(None)
    assert summary.purity_corrected is None
    assert summary.to_json()["purity_corrected"] is None
    assert isinstance(summary.purity_by_count, PurityEstimate)
    assert summary.estimated_mass_g > 0.0
