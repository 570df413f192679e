"""engines.quality."""
