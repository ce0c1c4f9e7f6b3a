"""IO steps: each does one network operation under its own deadline and returns observations.

Nothing in this package decides what a failure *means*; it never imports ``probe.classify``.
"""
