"""Tests of probe.run."""
