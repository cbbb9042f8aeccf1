"""Example request bodies of the provisioning flow, replayed by ``stead demo``."""
