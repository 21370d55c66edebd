"""The sync benchmark's functions, addressed ``docs:get``, ``docs:feed``, ``docs:touch``, ..."""
