"""Stead: a self-hosted control plane that provisions data projects."""

from importlib.metadata import version

#: The installed distribution's version (pyproject.toml).
__version__ = version("stead")
