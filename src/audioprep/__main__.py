"""``python -m audioprep`` runs the CLI."""

from audioprep.cli.app import app

app(prog_name="audioprep")
