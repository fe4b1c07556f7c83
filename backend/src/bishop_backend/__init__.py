"""Bishop orchestrator backend."""
