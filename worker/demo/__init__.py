"""`lcstream demo`: the whole system on an embedded Redis, with scripted chat models."""
