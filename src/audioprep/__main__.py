"""``python -m audioprep`` runs the CLI."""

from audioprep.cli import app

app(prog_name="audioprep")
