"""gatelab: the networks of 'Getting started with TensorFlow 2', chapter 3, as configuration."""

import os


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its native start-up lines (oneDNN, CUDA stubs, absl) hidden.

    Those lines are written straight to file descriptor 2 before TensorFlow reads
    TF_CPP_MIN_LOG_LEVEL, so the variable alone cannot hide them (tensorflow#100442).
    """
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        os.close(devnull)


# Quiet by default; TF_CPP_MIN_LOG_LEVEL=0 shows everything TensorFlow says.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0":
    _import_tensorflow_quietly()
