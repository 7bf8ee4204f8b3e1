"""The `lcstream` command line."""
