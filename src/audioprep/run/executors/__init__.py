"""run.executors."""
