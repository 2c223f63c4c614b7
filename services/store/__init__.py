"""Where results are kept: the process's memory (``memory``: byte-bounded LRUs and single-flight, one
reset), the safe byte format (``codec``, over ``services.serial``'s one field table), the shared cache
and its backends (``cache``, ``backends``), short ids for long texts (``share``) and the Celery task
queue (``tasks``). Nothing read back is unpickled.

Above ``services.model`` (a worker runs the forward pass); below the analyses and the API.
"""
