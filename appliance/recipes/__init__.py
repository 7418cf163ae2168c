"""Inspection recipes: one species profile per JSON file in this package."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class RecipeError(ValueError):
    """A recipe is unknown or its file is invalid."""


class BundleMissing(RecipeError):
    """The recipe's model bundle has not been built or installed."""


@dataclass(frozen=True)
class Recipe:
    """A species profile.

    Attributes
    ----------
    name : str
        Short name (``maize``), as typed after ``--recipe``.
    classes, pure_classes : tuple of str
        The classes the recipe's model tells apart, and those that are pure seed.
    seed_length_mm : (float, float)
        Plausible seed length range.
    mass_mg_per_mm2, mass_exponent : float
        Seed mass from projected area: ``mass_mg = k * area_mm2 ** exponent``.
    bundle : str
        File name of the model bundle, under the data directory's ``models/``.
    build : dict
        How `seedqa-models recipe build` makes the bundle.
    """

    name: str
    species: str
    description: str
    classes: tuple[str, ...]
    pure_classes: tuple[str, ...]
    seed_length_mm: tuple[float, float]
    mass_mg_per_mm2: float
    mass_exponent: float
    bundle: str
    build: dict[str, Any] = field(default_factory=dict)

    def bundle_path(self, models_dir: Path) -> Path:
        """Where the recipe's bundle is installed."""
        return Path(models_dir) / self.bundle

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recipe:
        """Parse and check a recipe document."""
        try:
            recipe = cls(
                name=str(data["name"]),
                species=str(data.get("species", "")),
                description=str(data.get("description", "")),
                classes=tuple(str(c) for c in data["classes"]),
                pure_classes=tuple(str(c) for c in data["pure_classes"]),
                seed_length_mm=(
                    float(data["seed_length_mm"][0]),
                    float(data["seed_length_mm"][1]),
                ),
                mass_mg_per_mm2=float(data["mass_mg_per_mm2"]),
                mass_exponent=float(data.get("mass_exponent", 1.5)),
                bundle=str(data["bundle"]),
                build=dict(data.get("build", {})),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise RecipeError(f"recipe is incomplete or malformed: {exc!r}") from exc
        if not set(recipe.pure_classes) <= set(recipe.classes):
            raise RecipeError(
                f"recipe {recipe.name}: pure classes {recipe.pure_classes} are not "
                f"among its classes {recipe.classes}"
            )
        if "/" in recipe.bundle or recipe.bundle.startswith("."):
            raise RecipeError(f"recipe {recipe.name}: bundle must be a plain file name")
        return recipe


def available() -> list[Recipe]:
    """Every recipe shipped with the appliance, by name."""
    folder = resources.files(__name__)
    recipes = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            recipes.append(Recipe.from_json(json.loads(entry.read_text())))
    return recipes


def get(name: str) -> Recipe:
    """Return the recipe called `name`.

    Raises
    ------
    RecipeError
        If there is no such recipe; the message lists those there are.
    """
    recipes = {r.name: r for r in available()}
    if name not in recipes:
        raise RecipeError(
            f"no recipe called {name!r}; available: {', '.join(sorted(recipes))}"
        )
    return recipes[name]
