"""bench/data/preview.py and ``bench data preview``: the recipe's own augmentation layers, drawn on one face."""

import numpy as np
import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.config import AugmentConfig, MixConfig
from bench.data.preview import augmentation_rows, pick_faces


def faces():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (2, 48, 48)).astype(np.uint8)


def test_rows_are_the_whole_augmentation_then_each_layer_then_mixing():
    face, partner = faces()
    augment = AugmentConfig(rotation_degrees=0, shift=0, zoom=0, shear_degrees=0, brightness=(1.0, 1.0),
                            crop_padding=4, occlusion=1.0)  # fmt: skip
    rows = augmentation_rows(augment, MixConfig(mixup_alpha=0.4), face, partner, views=5)
    assert [name for name, _ in rows] == ["recipe augmentation", "random_flip", "random_pad_crop", "random_erasing",
                                          "mixup/cutmix"]  # fmt: skip
    for _, views in rows:
        assert len(views) == 5 and all(image.shape == (48, 48) for _, image in views)
    flips = [image for _, image in rows[1][1]]
    assert all(np.array_equal(f, face) or np.array_equal(f, face[:, ::-1]) for f in flips)
    assert any(not np.array_equal(f, face) for f in flips)  # five draws: a flip comes up
    erased = [image for _, image in rows[3][1] if not np.array_equal(image, face)]
    assert erased and all(np.all(e[e != face] == 0) for e in erased)  # erasing only blacks out a box
    for _, mixed in rows[4][1]:  # mixup: a blend of the two faces, pixel by pixel between them
        low, high = np.minimum(face, partner), np.maximum(face, partner)
        assert np.all(mixed >= low - 1e-3) and np.all(mixed <= high + 1e-3)


def test_a_recipe_that_neither_augments_nor_mixes_has_no_rows():
    face, partner = faces()
    assert augmentation_rows(AugmentConfig(enabled=False), MixConfig(), face, partner) == []


def test_the_partner_is_the_next_face_of_another_class():
    images = np.arange(4)[:, None, None] * np.ones((1, 48, 48), np.uint8)
    face, partner = pick_faces(images, np.array([2, 2, 3, 2]), 0)
    assert face[0, 0] == 0 and partner[0, 0] == 2
    assert pick_faces(images, np.array([1, 1, 1, 1]), 3)[1][0, 0] == 0  # one class: the next face
    with pytest.raises(IndexError):
        pick_faces(images, np.zeros(4), 4)


def test_preview_command_writes_one_png_and_refuses_nothing_to_show(tmp_path):
    runner = CliRunner()
    out = tmp_path / "p.png"
    args = ["data", "preview", "--recipe", "smoke", "--data", "synthetic:100:1", "--views", "3", "--out", str(out)]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG" and f"wrote {out}" in result.output
    result = runner.invoke(cli, [*args, "--set", "data.augment.enabled=false"], catch_exceptions=False)
    assert result.exit_code == 2 and "nothing to preview" in result.output
    result = runner.invoke(cli, [*args, "--index", "99999"], catch_exceptions=False)
    assert result.exit_code == 2 and "past the" in result.output
    help_text = runner.invoke(cli, ["data", "preview", "--help"]).output
    assert "bench data preview --recipe cpu" in help_text
