"""Benchmarks: scripts that print figures and ratios against a baseline (not tests)."""
