"""The local development stack: Redis/Valkey servers (pub/sub shards and a Redis Cluster),
chat node processes and nginx in front, for ``make run`` and the tests.

Not part of the server: it is not in the wheel or the image, and it runs from the checkout
(``python -m devstack``).  It starts the server as ``python -m chat serve`` and never imports
``chat``.  Every process is a :class:`devstack.procs.ProcessHandle`.
"""
