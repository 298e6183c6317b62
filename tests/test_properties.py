"""Property-based tests of the two parsers users type into: arch strings and ``--set key=value``."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasbench_suite.config import Protocol, _field_types, coerce, parse_set
from nasbench_suite.errors import ArchStringError, ConfigError
from nasbench_suite.space import NUM_EDGES, NUM_OPS, OPS, Cell

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ops_st = st.tuples(*[st.integers(0, NUM_OPS - 1)] * NUM_EDGES)


# --- arch strings -----------------------------------------------------------------------------------------------
@SETTINGS
@given(ops_st)
def test_arch_string_round_trip(ops):
    cell = Cell(ops)
    assert Cell.parse(cell.arch_str) == cell
    assert Cell.parse(f"  {cell.arch_str}\n") == cell  # surrounding blanks are forgiven
    assert Cell.from_index(cell.index) == cell


# text built from the arch string alphabet hits the parser's deeper checks far more often than random unicode
arch_alphabet = st.sampled_from(["|", "+", "~", "0", "1", "2", "3", "_", "x", *OPS, " ", "\n", "~0|", "|+|"])


@SETTINGS
@given(st.one_of(st.text(), st.lists(arch_alphabet, max_size=40).map("".join)))
def test_arbitrary_text_parses_or_raises_arch_string_error(text):
    try:
        cell = Cell.parse(text)
    except ArchStringError as e:
        assert str(e)  # a message that says what is wrong
        return
    assert Cell.parse(cell.arch_str) == cell


@SETTINGS
@given(ops_st, st.integers(0, 200), st.sampled_from(["", "|", "+", "~", "x", "~9", "|+"]))
def test_mutated_arch_strings_never_raise_anything_else(ops, pos, junk):
    s = Cell(ops).arch_str
    pos = pos % (len(s) + 1)
    for text in (s[:pos] + junk + s[pos:], s[:pos] + s[pos + 1 :]):
        try:
            Cell.parse(text)
        except ArchStringError:
            pass


@given(st.one_of(st.none(), st.integers(), st.lists(st.integers()), st.binary()))
def test_non_strings_raise_arch_string_error(value):
    with pytest.raises(ArchStringError):
        Cell.parse(value)


# --- --set key=value --------------------------------------------------------------------------------------------
@SETTINGS
@given(st.lists(st.text(max_size=30), max_size=5))
def test_parse_set_parses_or_raises_config_error(items):
    try:
        out = parse_set(items)
    except ConfigError:
        return
    for item in items:
        key, _, value = item.partition("=")
        assert (
            out[key.strip()]
            == [v for i in items for k, _, v in [i.partition("=")] if k.strip() == key.strip()][-1].strip()
        )


@SETTINGS
@given(
    st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,15}", fullmatch=True), st.text(max_size=20).filter(lambda v: "\n" not in v)
)
def test_parse_set_keeps_key_and_value(key, value):
    assert parse_set([f"{key}={value}"]) == {key: value.strip()}


PROTOCOL_TYPES = _field_types(Protocol)
values_st = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
)


@SETTINGS
@given(st.sampled_from(sorted(PROTOCOL_TYPES)), values_st)
def test_coerce_converts_or_raises_config_error(key, value):
    try:
        coerce(key, value, PROTOCOL_TYPES[key])
    except ConfigError as e:
        assert key in str(e)


@SETTINGS
@given(st.integers(-(10**12), 10**12))
def test_int_round_trip(n):
    assert coerce("epochs", str(n), int) == n
    assert coerce("lr_tmax", str(n), int | None) == n


@SETTINGS
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_round_trip(x):
    assert coerce("lr", repr(x), float) == x
    assert coerce("lr", str(x), float) == x


def test_float_nan_and_none():
    for bad in ("nan", "inf", "-inf"):  # never a meaningful setting: refused, not propagated into training
        with pytest.raises(ConfigError):
            coerce("lr", bad, float)
    assert coerce("lr_tmax", "none", int | None) is None and coerce("lr_tmax", "null", int | None) is None
    with pytest.raises(ConfigError):
        coerce("epochs", "none", int)


@SETTINGS
@given(
    st.booleans(),
    st.sampled_from(
        [
            str,
            lambda b: str(b).lower(),
            lambda b: str(b).upper(),
            lambda b: str(int(b)),
            lambda b: " yes " if b else " no ",
            lambda b: "on" if b else "off",
        ]
    ),
)
def test_bool_round_trip(b, spell):
    assert coerce("nesterov", spell(b), bool) is b


@SETTINGS
@given(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["{}, {}", "({},{})", "[{}, {}]", " {} ,{} "]),
)
def test_tuple_round_trip(a, b, fmt):
    assert coerce("arch_betas", fmt.format(repr(a), repr(b)), tuple[float, float]) == (a, b)
    assert coerce("arch_betas", [a, b], tuple[float, float]) == (a, b)


@SETTINGS
@given(st.integers(1, 10**6).map(str).map(lambda s: s + ".5"))
def test_fractional_value_is_not_an_int(text):
    with pytest.raises(ConfigError, match="needs an integer"):
        coerce("epochs", text, int)


@SETTINGS
@given(st.text(max_size=20))
def test_text_for_int_float_bool_parses_or_raises_config_error(text):
    for typ in (int, float, bool, int | None, tuple[float, float]):
        try:
            v = coerce("k", text, typ)
        except ConfigError:
            continue
        if typ is int:
            assert float(text) == v


@pytest.mark.parametrize("text", ["inf", "-inf", "nan", "1e999"])
def test_non_finite_text_for_an_int_is_a_config_error(text):
    with pytest.raises(ConfigError):
        coerce("epochs", text, int)
