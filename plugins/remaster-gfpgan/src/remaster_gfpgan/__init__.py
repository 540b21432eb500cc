"""GFPGAN face restoration for remaster (stage ``gfpgan``)."""
