"""``python -m app`` is the ``minyi`` command."""

from app.cli import main

main()
