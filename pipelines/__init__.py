"""Pipelines: short loops that wire the models to a scheduler, saved and loaded as Hub repos."""
