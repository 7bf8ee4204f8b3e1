"""lcstream worker service: the consumer-group worker, its CLI and the embedded demo."""
