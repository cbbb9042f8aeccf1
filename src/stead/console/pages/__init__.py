"""Console pages: one module per area, each exposing ``router`` (templates in
``templates/<area>/``)."""
