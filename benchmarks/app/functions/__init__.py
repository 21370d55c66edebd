"""The benchmark app's functions, addressed ``items:insert``, ``items:get``, ``items:range``."""
