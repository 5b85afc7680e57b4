"""Converters from official research checkpoints to this package's diffusers-format model folders."""
