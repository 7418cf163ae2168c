"""The annotation screen's state, without Qt: a batch of seeds and their labels.

The widget in `ui.annotation` only displays this state and forwards keys and
clicks to it, so the rules (which key means which class, where the cursor goes,
what is submitted, how long the batch took) are tested without a display.
"""

from __future__ import annotations

import logging
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: Keys for classes, in class order: 1-9, then letters.
CLASS_KEYS = "123456789" + string.ascii_lowercase


def class_keys(classes: Sequence[str]) -> dict[str, int]:
    """Return the key of each class index: ``{"1": 0, "2": 1, ...}``."""
    if len(classes) > len(CLASS_KEYS):
        raise NotImplementedError(
            f"the annotation screen has keys for {len(CLASS_KEYS)} classes, the "
            f"model has {len(classes)}"
        )
    return {CLASS_KEYS[i]: i for i in range(len(classes))}


@dataclass
class AnnotationBatch:
    """One labelling round being labelled.

    Attributes
    ----------
    classes : tuple of str
        The model's classes.
    suggested : list of str
        The model's class for each item, in the round's order.
    labels : list of str
        The class each item will be submitted with (the suggestion until changed).
    changed : set of int
        Positions the expert relabelled.
    cursor : int
        The item the keyboard acts on.
    columns : int
        Items per row of the grid (arrow keys move by rows).
    """

    classes: tuple[str, ...]
    suggested: list[str]
    columns: int = 5
    labels: list[str] = field(init=False)
    changed: set[int] = field(default_factory=set)
    cursor: int = 0
    clock: Callable[[], float] = time.monotonic
    _started: float = field(init=False)

    def __post_init__(self) -> None:
        self.labels = list(self.suggested)
        self.keys = class_keys(self.classes)
        self._started = self.clock()

    def __len__(self) -> int:
        return len(self.labels)

    def set_label(self, position: int, class_index: int) -> None:
        """Give the item at `position` the class `class_index`."""
        if not 0 <= position < len(self) or not 0 <= class_index < len(self.classes):
            raise IndexError(
                f"position {position} of {len(self)} or class {class_index} of "
                f"{len(self.classes)} is out of range"
            )
        self.labels[position] = self.classes[class_index]
        if self.labels[position] == self.suggested[position]:
            self.changed.discard(position)
        else:
            self.changed.add(position)

    def press(self, key: str) -> bool:
        """Apply a class key at the cursor and move on; return whether it was one."""
        index = self.keys.get(key.lower())
        if index is None:
            return False
        self.set_label(self.cursor, index)
        self.move(1)
        return True

    def move(self, step: int) -> None:
        """Move the cursor by `step` items, staying inside the batch."""
        if len(self):
            self.cursor = min(max(self.cursor + step, 0), len(self) - 1)

    def move_rows(self, rows: int) -> None:
        """Move the cursor up or down by whole rows of the grid."""
        self.move(rows * self.columns)

    def elapsed_s(self) -> float:
        """Return the seconds since the batch was shown."""
        return self.clock() - self._started

    def submission(self) -> dict[int, str]:
        """Return the label of every item, by position."""
        return dict(enumerate(self.labels))
