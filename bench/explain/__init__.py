"""Where a trained model looks: Grad-CAM, the hybrid head's spatial attention, per-class averages and
the pages that show them (``bench explain``). Nothing here trains or tracks anything; it reads a saved
model through its public parts (``model.features``, ``model.head``) and returns arrays and files."""
