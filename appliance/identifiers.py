"""Lot codes, sample codes and operator names: checked and normalised once, here."""

from __future__ import annotations

import re
import unicodedata

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,39}")
_NAME = re.compile(r"[^\W\d_][\w .'-]{0,59}")


class InvalidSampleCode(ValueError):
    """A lot code, sample code or operator name is not acceptable."""


def normalise_code(text: str, *, what: str = "sample code") -> str:
    """Return a lot or sample code in canonical form, or raise `InvalidSampleCode`.

    The text is Unicode-normalised (NFKC) and stripped; it must then be 1 to 40
    characters of letters, digits, ``.``, ``_``, ``-`` or ``/``, starting with a
    letter or digit.
    """
    value = unicodedata.normalize("NFKC", str(text)).strip()
    if not value:
        raise InvalidSampleCode(f"the {what} is empty; type the code on the label")
    if not _CODE.fullmatch(value) or ".." in value:
        raise InvalidSampleCode(
            f"the {what} {value!r} is not valid: use 1 to 40 letters, digits, '.', "
            "'_', '-' or '/', starting with a letter or digit"
        )
    return value


def normalise_operator(text: str) -> str:
    """Return an operator's name in canonical form, or raise `InvalidSampleCode`."""
    value = " ".join(unicodedata.normalize("NFKC", str(text)).split())
    if not _NAME.fullmatch(value):
        raise InvalidSampleCode(
            f"the operator name {value!r} is not valid: 1 to 60 characters, "
            "starting with a letter"
        )
    return value
