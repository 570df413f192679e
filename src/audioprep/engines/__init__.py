"""Wrappers around the external models (heavy imports happen inside, at set-up)."""
