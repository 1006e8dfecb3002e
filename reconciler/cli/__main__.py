"""``python -m reconciler.cli``: the installed ``reconciler`` command."""

from reconciler.cli import main

main()
