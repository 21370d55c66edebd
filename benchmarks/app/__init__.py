"""The benchmark's app: one table of small documents, one insert and two reads."""
