"""The dra-gpu command line."""
