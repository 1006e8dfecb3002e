"""reconciler — declarative desired-state reconciler for BestProxy, JDB and TcaplusDB."""

__version__ = "0.1.0"
