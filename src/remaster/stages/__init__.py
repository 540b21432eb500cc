"""Built-in stages: classic interpolators and simple degraders."""
