import pytest

from appliance import recipes
from appliance.bundle import BundleError
from appliance.classifier import classifier_for
from appliance.recipes import BundleMissing, Recipe, RecipeError


def test_maize_and_wheat_are_shipped():
    names = [r.name for r in recipes.available()]
    assert {"maize", "wheat"} <= set(names)
    maize = recipes.get("maize")
    assert maize.classes == ("pure", "broken", "discolored", "silkcut")
    assert maize.pure_classes == ("pure",)
    assert recipes.get("wheat").pure_classes == ("grain",)


def test_an_unknown_recipe_lists_the_known_ones():
    with pytest.raises(RecipeError, match="maize"):
        recipes.get("barley")


def test_a_missing_bundle_says_how_to_build_it(tmp_path):
    with pytest.raises(BundleMissing, match="seedqa-models recipe build maize"):
        classifier_for(recipes.get("maize"), tmp_path)


def test_a_bundle_for_other_classes_is_refused(untrained_bundle, tmp_path):
    import shutil

    shutil.copy(untrained_bundle, tmp_path / "wheat.safetensors")
    with pytest.raises(BundleError, match="expects"):
        classifier_for(recipes.get("wheat"), tmp_path)


@pytest.mark.parametrize(
    "change",
    [{"pure_classes": ["healthy"]}, {"bundle": "../x.safetensors"}, {"classes": None}],
)
def test_malformed_recipes_are_refused(change):
    data = {
        "name": "x",
        "classes": ["a", "b"],
        "pure_classes": ["a"],
        "seed_length_mm": [1, 2],
        "mass_mg_per_mm2": 1.0,
        "bundle": "x.safetensors",
    }
    data.update(change)
    with pytest.raises(RecipeError):
        Recipe.from_json(data)
