"""``memprobe watch``: which route keeps memory in a production server, on the traffic it really
gets. Inside the server, the recorder (:mod:`memprobe.agent.watching`) counts each route's
requests and reads the heap cheaply; here, the session that reaches the server and asks its
workers for their windows (:mod:`memprobe.watch.session`), the analysis that turns windows into
bytes kept per request per route (:mod:`memprobe.watch.analysis`, :mod:`memprobe.watch.stats`),
the memory cgroup (:mod:`memprobe.watch.cgroup`), the time to the limit and the recycling advice
(:mod:`memprobe.watch.advice`), the rolling report (:mod:`memprobe.watch.report`), the OpenMetrics
endpoint (:mod:`memprobe.watch.metrics`), and the in-code form for a process that cannot be
attached to (:func:`memprobe.watch.middleware.middleware`)."""
