import numpy as np
import pytest

from nasbench_suite.errors import ArchStringError
from nasbench_suite.space import NUM_CELLS, OPS, Cell, all_cells, all_ops_array, sample_cell

OPT = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_roundtrip_and_order():
    c = Cell.parse(OPT)
    assert c.ops == (3, 3, 3, 1, 3, 3)
    assert c.arch_str == OPT
    assert Cell.from_index(c.index) == c


def test_enumeration_is_complete_and_unique():
    cells = list(all_cells())
    assert len(cells) == NUM_CELLS == 15625
    assert len({c.arch_str for c in cells}) == NUM_CELLS
    arr = all_ops_array()
    assert arr.shape == (NUM_CELLS, 6)
    assert all(tuple(arr[i]) == cells[i].ops for i in (0, 1, 777, 15624))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "garbage",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|",
        "|conv~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    ],
)
def test_malformed_strings_are_clear_errors(bad):
    with pytest.raises(ArchStringError):
        Cell.parse(bad)


def test_sampling_is_seeded_and_covers_all_ops():
    a = [sample_cell(np.random.default_rng(3)) for _ in range(3)]
    assert len(set(a)) == 1
    rng = np.random.default_rng(0)
    seen = {o for _ in range(200) for o in sample_cell(rng).ops}
    assert seen == set(range(len(OPS)))
