"""Measuring generated talking-head video against real footage."""
