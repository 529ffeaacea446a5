"""The figures a study logs to its parent run: optimization history, parameter importances, slices."""

from __future__ import annotations

import warnings
from pathlib import Path


def study_plots(study, folder: Path) -> list[Path]:
    """Optimization history, parameter importances and slice plot (skipped when too few trials)."""
    import matplotlib
    import optuna

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    paths = []
    for name, fn in (
        ("optimization_history", ovm.plot_optimization_history),
        ("param_importances", ovm.plot_param_importances),
        ("slice", ovm.plot_slice),
    ):
        try:
            with warnings.catch_warnings():
                # Optuna's matplotlib plots are "experimental" (ExperimentalWarning on every call), and
                # matplotlib warns when a slice plot's many axes do not fit tight_layout: neither is the user's
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", UserWarning)
                result = fn(study)
                fig = (result.flat[0] if hasattr(result, "flat") else result).figure
                fig.set_size_inches(12, 5)
                fit_layout(fig)
                fig.savefig(folder / f"{name}.png", dpi=100)
            paths.append(folder / f"{name}.png")
        except Exception:  # importances need >= 2 complete trials with varied values
            pass
        finally:
            plt.close("all")
    return paths


def fit_layout(fig) -> None:
    """Tighten the figure's margins, except where Optuna drew a colorbar (the slice plot): tight_layout does not
    know that colorbar and slid the last parameter's axes under it, hiding its points."""
    if not any(ax.get_label() == "<colorbar>" for ax in fig.axes):
        fig.tight_layout()
