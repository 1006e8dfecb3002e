"""JDB game platform: free-spin reward events and transaction history (``apiRequest.do``).
Registered by :mod:`.spec`."""
