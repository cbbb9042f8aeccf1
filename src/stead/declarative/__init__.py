"""Declarative provisioning: a YAML file of projects, planned against and applied to a server
through the SDK (``stead plan``, ``stead apply``, ``stead export``, ``stead schema``)."""
