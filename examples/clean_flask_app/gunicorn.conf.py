"""gunicorn settings: one process (so the in-process SimpleCache is the only copy), threads for
concurrency, and periodic worker restarts as a guard."""
bind = "127.0.0.1:8000"
workers = 1
threads = 4
max_requests = 1000
max_requests_jitter = 100
