"""What a worker tells about itself: stats, Prometheus metrics, health probes, logs."""
