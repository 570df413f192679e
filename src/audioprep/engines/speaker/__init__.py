"""engines.speaker."""
