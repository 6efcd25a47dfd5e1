"""Capture and replay: the requests of a leaking route recorded in production
(:mod:`memprobe.capture.format`), replayed by ``hunt --replay`` and the pytest plugin."""
