"""Tests of the example plugin, as a plugin author would write them."""

from __future__ import annotations

import numpy as np
import pytest

from remaster import Remasterer
from remaster.plugin.host import get_host
from remaster.testing import check_stage


def test_registered_through_its_entry_point():
    host = get_host()
    plugin = next(p for p in host.plugins if p.name == "sepia")
    assert plugin.distribution == "remaster-example-sepia"
    assert plugin.error is None and plugin.stages == ["sepia"]
    assert host.stages.get("sepia").plugin == "sepia"


def test_conforms_to_the_stage_contract():
    check_stage("sepia", {"strength": 0.7})


def test_full_strength_tones_white_to_the_sepia_row_sums():
    white = np.full((5, 7, 3), 255, np.uint8)
    out = Remasterer(["sepia"]).run(white)
    assert out.shape == white.shape and out.dtype == np.uint8
    # Row sums of the matrix exceed 1 for R and G, so those clip to white; B lands at 0.937.
    assert out[0, 0].tolist() == [255, 255, round(0.937 * 255)]


def test_strength_zero_is_identity():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    assert np.array_equal(Remasterer(["sepia(strength=0)"]).run(img), img)


def test_rejects_out_of_range_strength():
    from remaster import StageParamError

    with pytest.raises(StageParamError, match="strength"):
        Remasterer(["sepia(strength=2)"])
