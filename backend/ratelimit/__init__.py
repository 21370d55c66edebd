"""Rate limits: token buckets and fixed windows, kept transactionally in the database."""
