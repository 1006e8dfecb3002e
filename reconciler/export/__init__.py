"""Exports of live data that is not desired state (vendor reports), e.g. JDB transaction details."""
