"""Benchmark and training data built from real footage (see `liteframe data needle`)."""
