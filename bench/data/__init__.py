"""Data layer: FER2013 loaders (CSV and image folders), synthetic faces, checks, tf.data pipeline."""

from bench.data.dataset import FerData
from bench.data.sources import load_data, load_for_recipe

__all__ = ["FerData", "load_data", "load_for_recipe"]
