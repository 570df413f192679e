"""Export formats, one module per format."""
