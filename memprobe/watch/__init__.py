"""``memprobe watch``: find the route that keeps memory in production, on the traffic it really
gets. Inside the server: per-route request counts and cheap heap readings (``inside``); in the
parent: windows to bytes per request per route (``analysis``, ``stats``), the memory cgroup
(``cgroup``), the time to the limit and the recycling advice (``advice``), the rolling report
(``report``) and the OpenMetrics endpoint (``metrics``)."""
