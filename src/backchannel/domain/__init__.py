"""Domain operations: each lives here once, and both transports call it."""
