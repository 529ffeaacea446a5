"""Backbones: ``(batch, S, S, 3)`` images in, spatial feature maps ``(batch, H, W, C)`` out.

Each factory is keyword-only (``input_shape``, ``weights``) and registered in ``BACKBONES`` with its
metadata: minimum input size, input normalization, and whether ImageNet weights exist.
"""
