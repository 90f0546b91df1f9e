"""The one boundary to NVML: every NVML call the project makes lives in this package.

``session.Nvml`` opens the library once per process and translates NVML errors into
``dra_driver.errors``; ``discovery`` turns NVML's answers into an ``Inventory``.
"""
