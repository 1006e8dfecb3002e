"""YAML loading with source positions, secret references, config."""
