"""Fitting and training: datasets from the store or folders, parameter search, model versions."""
