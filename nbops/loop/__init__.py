"""Closing the loop from monitoring back to training: the `drift-detected` event that starts
the retraining job in CI (`dispatch`)."""
