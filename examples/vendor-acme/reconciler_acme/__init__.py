"""Acme Edge (a content delivery network's cache rules): an example vendor for reconciler, shipped
as its own distribution (``reconciler-vendor-acme``). See docs/dev/adding-a-vendor.md."""
