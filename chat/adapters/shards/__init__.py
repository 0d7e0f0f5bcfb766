"""The pub/sub side: one object per standalone Redis shard (``shard``), the ring-routed
broker over them (``broker``), and local delivery of user channels no other node follows
(``peers``)."""
