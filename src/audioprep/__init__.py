"""audioprep: turn raw web audio into clean speech and ASMR training corpora."""

__version__ = "0.1.0"
