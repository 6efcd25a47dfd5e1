"""``memprobe watch``: which route keeps memory in a production server, on the traffic it really
gets. The parent side (:mod:`memprobe.watch.session`), the in-code form for a process that
cannot be attached to (:func:`memprobe.watch.middleware.middleware`)."""
from __future__ import annotations
