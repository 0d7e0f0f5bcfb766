"""The Redis Cluster side: the client (``client``: connection, retry deadline, topology),
its per-master pipeline (``pipeline``), Lua scripts (``scripts``), and one store module per
aggregate (accounts, history, limits, presence, rooms, roster, sessions)."""
