"""The run's tables and figures."""
