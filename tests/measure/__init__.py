"""Tests of probe.measure."""
