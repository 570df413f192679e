"""engines.tone."""
