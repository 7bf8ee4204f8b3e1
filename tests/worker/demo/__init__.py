"""Tests of the embedded demo."""
