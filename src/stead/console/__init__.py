"""The web console at ``/console`` (docs/console.md): server-rendered pages on the same
services, actor and permission table as ``/v1``. :mod:`stead.console.routes` assembles the
pages; :mod:`stead.console.web` holds what every page shares."""
