"""Preparing a film for the model, the same at training and inference: the preprocessing spec
(`preprocessing`), the harmonisation defences it runs (`harmonise`, `lungs`, `acquisition`), and
the training-only defences (`defences`).

May import `decode` and `model`."""
