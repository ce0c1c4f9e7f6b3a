"""Tests of probe.lab."""
