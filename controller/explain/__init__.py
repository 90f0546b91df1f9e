"""``dra-gpu explain``'s analysis, below the CLI so the mode controller can answer it from its watch cache."""
