"""File storage: ``ctx.storage`` (``api.py``), the ``_storage`` table (``tables.py``), the
service and its URLs (``service.py``), blob stores (``blobs.py``), the sweeper
(``sweeper.py``) and the ``_storage`` folder of a snapshot (``snapshot.py``). Import from the
modules: ``backend.udf.context`` imports ``api`` early."""
