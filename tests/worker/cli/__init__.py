"""Tests of the command line's process tuning."""
