"""Bishop sound worker."""
