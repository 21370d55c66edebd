"""File storage: ``ctx.storage`` (``api.py``), the ``_storage`` table (``tables.py``), the
service and its URLs (``service.py``), blob stores (``blobs.py``) and the sweeper
(``sweeper.py``). Import from the modules: ``backend.udf.context`` imports ``api`` early."""
