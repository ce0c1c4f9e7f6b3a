"""Tests of probe.cli."""
