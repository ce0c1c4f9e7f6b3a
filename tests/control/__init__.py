"""Tests of probe.control."""
