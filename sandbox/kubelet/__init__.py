"""A simulated kubelet: plugin registration and the DRA prepare/unprepare protocol, against the real API."""
