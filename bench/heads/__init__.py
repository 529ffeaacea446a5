"""Heads: a spatial feature map ``(batch, H, W, C)`` in, class probabilities ``(batch, K)`` out, K being
the data set's classes (7, or FER+'s 8).

Each factory is keyword-only (``feature_shape``, ``num_classes``, then its options) and returns a
``keras.Model`` named ``head``. The softmax is float32 even under a mixed-precision policy.
"""
