"""`python -m probe` runs the command line (used inside simulated-network namespaces)."""

from probe.cli import main

main()
