"""Reliability under faults: slow handshakes, lossy and slow networks, frozen and dead peers."""
