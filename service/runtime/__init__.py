"""Model runtime: repository, manifests, ORT sessions, micro-batching. No HTTP here."""
