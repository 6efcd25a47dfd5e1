"""A realistic little app for bench/watch_overhead.py: five routes, a Jinja template, a sqlite
database (one connection per worker, 2,000 rows), a form POST."""
from __future__ import annotations

import sqlite3
import threading

from flask import Flask, request

app = Flask(__name__)
_local = threading.local()
PAGE = """<!doctype html><title>{{ title }}</title><h1>{{ title }}</h1>
<ul>{% for item in items %}<li><a href="/items/{{ item[0] }}">{{ item[1] }}</a>
{{ "%.2f"|format(item[2]) }}</li>{% endfor %}</ul>"""
TEMPLATE = app.jinja_env.from_string(PAGE)  # compiled once, as render_template's cache would


def db() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(":memory:")
        conn.execute("create table items (id integer primary key, name text, price real)")
        conn.executemany("insert into items values (?, ?, ?)",
                         [(i, f"item {i}", i * 1.25) for i in range(1, 2001)])
        conn.execute("create table orders (id integer primary key, item integer, note text)")
        _local.conn = conn
    return conn


@app.get("/")
def index() -> str:
    return TEMPLATE.render(title="shop", items=db().execute("select * from items limit 20").fetchall())


@app.get("/items/<int:item_id>")
def item(item_id: int) -> str:
    rows = db().execute("select * from items where id = ?", (item_id % 2000 + 1,)).fetchall()
    return TEMPLATE.render(title=f"item {item_id}", items=rows)


@app.get("/search")
def search() -> str:
    q = request.args.get("q", "1")
    rows = db().execute("select * from items where name like ? limit 30", (f"%{q}%",)).fetchall()
    return TEMPLATE.render(title=f"search {q}", items=rows)


#: what gift orders keep for ever: the leak watch is there to find (~100 B an order)
_gift_notes: list[str] = []


@app.post("/orders")
def order() -> str:
    if request.form.get("gift") == "1":
        _gift_notes.append(request.form.get("note", "") + " (gift)")
    conn = db()
    conn.execute("insert into orders (item, note) values (?, ?)", (1, request.form.get("note", "")))
    conn.execute("delete from orders where id < (select max(id) - 100 from orders)")
    return "ordered"


@app.get("/health")
def health() -> str:
    return "ok"
