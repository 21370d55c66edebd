"""The sync benchmark's app: small documents, watched one by one or as a short feed."""
