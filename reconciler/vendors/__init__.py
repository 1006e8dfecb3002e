"""The vendors this distribution ships, one package each, registered through the entry-point group
``reconciler.vendors`` (see :mod:`reconciler.vendor`). Vendors are independent of each other and the
core imports none of them."""
