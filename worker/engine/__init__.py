"""The engine: the `Worker`, one partition's rounds, one message from claim to ack."""
