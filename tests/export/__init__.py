"""Tests of probe.export."""
