"""`hydra/sweeper=vectorized`: a seed x learning-rate grid trained as one compiled population."""
