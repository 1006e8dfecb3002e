"""TcaplusDB: seed records in protobuf-defined tables (REST API). Registered by :mod:`.spec`."""
