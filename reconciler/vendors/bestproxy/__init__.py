"""BestProxy: proxy accounts and IP allowlists (``/gateway/`` API). Registered by :mod:`.spec`."""
