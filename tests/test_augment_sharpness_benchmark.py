"""benchmarks/investigations/augment_sharpness.py: detail left in faces by chained vs single-resampling augmentation."""

import json

import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def script():
    return load_benchmark("investigations/augment_sharpness")


def test_one_resampling_keeps_more_detail_and_matches_the_scipy_reference(script, tmp_path, capsys):
    out = tmp_path / "rows.json"
    script.main(["--data", "synthetic:200:1", "--images", "96", "--json", str(out)])
    rows = {row["way"]: row for row in json.loads(out.read_text())}
    assert list(rows) == ["clean", "per_layer", "once", "scipy_once"]
    assert rows["per_layer"]["gradient_energy"] < rows["once"]["gradient_energy"] < rows["clean"]["gradient_energy"]
    assert rows["once"]["gradient_energy"] == pytest.approx(rows["scipy_once"]["gradient_energy"], rel=0.15)
    assert rows["once"]["mean_abs_change"] == pytest.approx(rows["per_layer"]["mean_abs_change"], rel=0.25)
    assert len(capsys.readouterr().out.strip().splitlines()) == 5


def test_a_recipe_without_geometric_augmentation_is_refused_in_one_line(script, capsys):
    with pytest.raises(SystemExit):  # the cpu recipe flips and crops: no resampling to measure
        script.main(["--data", "synthetic:200:1", "--recipe", "cpu"])
    assert "does not resample faces (no rotation, shift, zoom or shear); pick one that" in capsys.readouterr().err
