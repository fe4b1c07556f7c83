"""Bishop browser app (built in the browser-app issue)."""
