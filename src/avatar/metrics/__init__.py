"""Measurements of generated motion and video, shared by tests, benchmarks and evaluation."""
