"""The study's figures: all three written, laid out without overlaps."""

import warnings

import matplotlib
import optuna
import pytest

from bench.tune.plots import fit_layout, study_plots

matplotlib.use("Agg")


@pytest.fixture
def study():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    s = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    s.optimize(
        lambda t: t.suggest_float("lr", 1e-4, 1e-2, log=True) * 10 + t.suggest_categorical("ema", [0.99, 0.998])
        - t.suggest_float("weight_decay", 1e-4, 0.1, log=True),
        n_trials=6,
    )
    return s


def test_study_plots_writes_the_three_figures(study, tmp_path):
    paths = study_plots(study, tmp_path)
    assert [p.name for p in paths] == ["optimization_history.png", "param_importances.png", "slice.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_slice_plot_keeps_its_colorbar_beside_the_last_axes(study):
    from optuna.visualization import matplotlib as ovm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        axes = ovm.plot_slice(study)
    fig = axes.flat[0].figure
    fig.set_size_inches(12, 5)
    fit_layout(fig)
    fig.canvas.draw()
    colorbar = next(ax for ax in fig.axes if ax.get_label() == "<colorbar>")
    last = max(ax.get_position().x1 for ax in fig.axes if ax is not colorbar)
    assert colorbar.get_position().x0 >= last


def test_fit_layout_tightens_a_plain_figure():
    fig = matplotlib.figure.Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    before = ax.get_position().x0
    fit_layout(fig)
    assert ax.get_position().x0 < before
