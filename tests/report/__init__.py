"""Tests of probe.report."""
