"""A Flask app whose data is built before gunicorn forks its workers (``gunicorn --preload``):
``/walk`` reads every object of it, and reading a Python object writes its reference count, so
each worker's first walk copies the pages it shared with the master (copy-on-write). The
master's USS then rises by about the data's size while its RSS stays where it was (once every
worker has walked: a page is the master's own only when no worker maps it any more). ``/ping``
touches none of it.
"""
from flask import Flask

app = Flask(__name__)
# ~10 MiB of small objects, spread over thousands of pages.
DATA = [f"record-{i}" for i in range(150_000)]


@app.route("/walk")
def walk() -> str:
    return str(sum(len(item) for item in DATA))


@app.route("/ping")
def ping() -> str:
    return "pong"
