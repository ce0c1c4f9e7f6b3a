"""`python -m probe` runs the command line (used inside simulated-network namespaces)."""

from probe.cli.root import main

main()
