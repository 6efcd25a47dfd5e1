import sqlite3
from contextlib import closing

from flask import Flask, g

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


@app.route("/users")
def users():
    return str(get_db().execute("SELECT count(*) FROM users").fetchone())


@app.route("/report")
def report():
    conn = sqlite3.connect("app.db")
    try:
        return str(conn.execute("SELECT 1").fetchone())
    finally:
        conn.close()


@app.route("/items")
def items():
    with closing(sqlite3.connect("app.db")) as conn:
        return str(conn.execute("SELECT 1").fetchone())
