"""Lot codes, sample codes and operator names: what is accepted, what is refused."""

from __future__ import annotations

import pytest

from appliance.identifiers import (
    InvalidSampleCode,
    normalise_code,
    normalise_operator,
)


@pytest.mark.parametrize("code", ["LOT-2026/001", "A.1_b", "7", "x" * 40])
def test_valid_codes_are_kept_as_typed(code: str) -> None:
    assert normalise_code(code) == code


def test_full_width_characters_are_normalised_to_ascii() -> None:
    assert normalise_code("ＬＯＴ１") == "LOT1"


def test_surrounding_spaces_are_stripped() -> None:
    assert normalise_code("  LOT-7 \t\n") == "LOT-7"


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("../x", id="parent-dir"),
        pytest.param("a..b", id="double-dot"),
        pytest.param("lot code", id="inner-space"),
        pytest.param("-start", id="leading-dash"),
        pytest.param("/abs", id="leading-slash"),
        pytest.param("x" * 41, id="41-chars"),
        pytest.param("LOT\x001", id="nul"),
        pytest.param("LOT\x1b1", id="escape"),
        pytest.param("LOT\t1", id="inner-tab"),
        pytest.param("LOT\u200b1", id="zero-width-space"),
        pytest.param("LÖT1", id="non-ascii-letter"),
    ],
)
def test_invalid_codes_are_refused(code: str) -> None:
    with pytest.raises(InvalidSampleCode):
        normalise_code(code)


@pytest.mark.parametrize("code", ["", "   ", "../x", "lot code"])
def test_refusal_names_what_was_checked(code: str) -> None:
    with pytest.raises(InvalidSampleCode, match="lot code"):
        normalise_code(code, what="lot code")


def test_refusal_shows_the_code_received() -> None:
    with pytest.raises(InvalidSampleCode, match=r"'a\.\.b'"):
        normalise_code("a..b", what="sample code")


def test_operator_name_spaces_are_collapsed() -> None:
    assert normalise_operator("  Ann \t  Lee ") == "Ann Lee"


@pytest.mark.parametrize("name", ["Ann Lee", "Zoë O'Neil-Smith", "李明"])
def test_operator_names_with_letters_are_accepted(name: str) -> None:
    assert normalise_operator(name) == name


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("123", id="digits"),
        pytest.param("_ann", id="leading-underscore"),
        pytest.param("Ann\x00Lee", id="nul"),
        pytest.param("A" * 61, id="61-chars"),
    ],
)
def test_invalid_operator_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidSampleCode, match="operator name"):
        normalise_operator(name)
