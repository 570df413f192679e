"""engines.asr."""
