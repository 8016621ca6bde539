"""Judging a model: metrics with confidence intervals (`metrics`), plots (`plots`), measuring a
saved model on a folder (`evaluate`), and the shortcut report (`shortcuts`).

May import `decode`, `model`, `prepare`, `data` and `serve`."""
