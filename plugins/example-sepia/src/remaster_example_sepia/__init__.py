"""Example remaster plugin: a sepia tone filter."""
