import shutil
import sqlite3

from flask import Flask, Response, g, request, stream_with_context

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
    with open("/tmp/upload.bin", "wb") as out:
        shutil.copyfileobj(request.files["file"].stream, out, 64 * 1024)
    return "ok"


@app.route("/export")
def export():
    def generate():
        for row in get_db().execute("SELECT * FROM events"):
            yield f"{row}\n"

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.route("/latest")
def latest():
    rows = get_db().execute("SELECT * FROM events ORDER BY id DESC LIMIT 20").fetchall()
    return "\n".join(str(r) for r in rows)


@app.route("/chunks")
def chunks():
    def generate():
        with open("/var/log/app.log", "rb") as f:
            while chunk := f.read(64 * 1024):
                yield chunk

    return Response(stream_with_context(generate()))
