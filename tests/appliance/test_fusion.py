import numpy as np
import pytest

from appliance.fusion import LOW_CONFIDENCE, ONE_VIEW, VIEWS_DISAGREE, fuse_views

PURE = np.array([True, False, False, False])  # pure, broken, discolored, silkcut


def test_a_defect_seen_from_one_side_makes_the_seed_impure():
    top = np.array([0.95, 0.02, 0.02, 0.01])
    bottom = np.array([0.1, 0.05, 0.8, 0.05])
    verdict = fuse_views(top, bottom, PURE)
    assert verdict.class_index == 2
    assert verdict.probability == pytest.approx(0.8)


def test_two_pure_views_give_a_pure_seed():
    verdict = fuse_views(
        np.array([0.9, 0.05, 0.03, 0.02]), np.array([0.8, 0.1, 0.05, 0.05]), PURE
    )
    assert verdict.class_index == 0
    assert verdict.flags == ()


def test_a_seed_seen_from_one_side_gets_a_verdict_and_a_flag():
    verdict = fuse_views(None, np.array([0.2, 0.7, 0.05, 0.05]), PURE)
    assert verdict.class_index == 1
    assert ONE_VIEW in verdict.flags


def test_different_defects_on_each_side_are_flagged():
    verdict = fuse_views(
        np.array([0.05, 0.9, 0.03, 0.02]), np.array([0.05, 0.05, 0.1, 0.8]), PURE
    )
    assert verdict.class_index == 1
    assert VIEWS_DISAGREE in verdict.flags


def test_an_unsure_verdict_is_flagged():
    verdict = fuse_views(np.array([0.45, 0.25, 0.2, 0.1]), None, PURE)
    assert LOW_CONFIDENCE in verdict.flags


def test_a_seed_needs_a_view():
    with pytest.raises(ValueError, match="at least one"):
        fuse_views(None, None, PURE)
