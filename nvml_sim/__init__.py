"""Simulated NVML: a libnvidia-ml.so.1 built with cffi whose functions are implemented in Python."""
