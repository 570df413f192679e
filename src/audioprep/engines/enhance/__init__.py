"""engines.enhance."""
