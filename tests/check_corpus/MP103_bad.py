import sqlite3

from flask import Flask, g
from sqlalchemy import create_engine

app = Flask(__name__)


@app.route("/users")
def users():
    conn = sqlite3.connect("app.db")  # expect: MP103
    return str(conn.execute("SELECT count(*) FROM users").fetchone())


@app.route("/orders")
def orders():
    engine = create_engine("sqlite:///app.db")  # expect: MP103
    return str(engine)


def get_db():
    if "db" not in g:
        g.db = sqlite3.connect("app.db")  # expect: MP103
    return g.db


@app.route("/items")
def items():
    with sqlite3.connect("app.db") as conn:  # expect: MP103
        row = conn.execute("SELECT 1").fetchone()
    return str(row) + str(get_db())
