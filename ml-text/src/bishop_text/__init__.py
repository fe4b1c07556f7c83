"""Bishop text worker."""
