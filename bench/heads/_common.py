"""Pieces shared by the heads: the float32 softmax output."""

from keras import layers


def softmax_output(x, num_classes: int):
    """Dense logits then a float32 softmax, so probabilities stay float32 under mixed precision."""
    logits = layers.Dense(num_classes, name="logits")(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
