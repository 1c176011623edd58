"""Load and soak tests: thousands of connections, exactly-once delivery, no leaks, shutdown."""
