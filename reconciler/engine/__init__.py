"""Load manifests -> plan (diff) -> render -> apply."""
