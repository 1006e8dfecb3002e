"""Emulators of the vendor APIs: real HTTP servers on loopback, persistent, with fault knobs.

This layer imports nothing above it (see DESIGN.md): emulators are written from the vendor
documents, independently of the clients.
"""
