"""engines.fingerprint."""
