"""Collecting audio from the web: URL lists, metadata schema, feeds, downloads, backends."""
