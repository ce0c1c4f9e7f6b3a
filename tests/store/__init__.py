"""Tests of probe.store."""
