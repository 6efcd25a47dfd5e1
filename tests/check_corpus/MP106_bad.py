import sqlite3
from pathlib import Path

from flask import Flask, g, request

app = Flask(__name__)


def get_db():
    if "db" not in g:
        g.db = sqlite3.connect("app.db")
    return g.db


@app.teardown_appcontext
def close_db(exc):
    db = g.pop("db", None)
    if db is not None:
        db.close()


@app.post("/upload")
def upload():
    data = request.files["file"].read()  # expect: MP106
    return str(len(data))


@app.route("/export")
def export():
    rows = get_db().execute("SELECT * FROM events").fetchall()  # expect: MP106
    return "\n".join(str(r) for r in rows)


@app.route("/dump")
def dump():
    cursor = get_db().execute("SELECT * FROM events")
    rows = list(cursor)  # expect: MP106
    return str(len(rows))


@app.route("/log")
def log():
    return Path("/var/log/app.log").read_text()  # expect: MP106
