"""Many projects' full state in a few requests (docs/api.md, Project state): what ``stead plan``
and ``stead export`` read."""
