"""Tests of probe.classify."""
