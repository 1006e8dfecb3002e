"""One client per vendor: transport, auth, envelope, typed errors, retries."""
