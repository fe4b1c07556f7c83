"""Bishop infrastructure adapters, chosen by URL: real servers in production, embedded ones
on a laptop."""
