"""Tests of the worker engine: rounds, intake, handler, the fenced write, leases."""
