"""engines.segment."""
