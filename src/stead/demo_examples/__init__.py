"""The contract's example request bodies, replayed by ``stead demo``."""
