"""``python -m keypolicy`` runs the command line."""

from keypolicy.cli import main

main()
