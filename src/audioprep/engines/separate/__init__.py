"""engines.separate."""
