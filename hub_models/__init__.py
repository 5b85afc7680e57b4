"""Diffusers-compatible model classes (ModelMixin + ConfigMixin) for the talking-head pipelines."""
