"""Tests of the background jobs (arq)."""
