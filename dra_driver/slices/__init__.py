"""ResourceSlice content for a node's GPUs: pure functions from inventory + modes + capabilities."""
