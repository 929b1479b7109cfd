"""Figures, drawn with matplotlib alone: no MLflow, no TensorFlow."""
