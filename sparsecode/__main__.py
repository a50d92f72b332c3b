"""``python -m sparsecode`` runs the command line."""

from .cli import main

main()
