from collections import deque

from flask import Flask, g, request

app = Flask(__name__)
RECENT = deque(maxlen=100)
COUNTS = {"hits": 0}
SESSIONS = {}


@app.route("/log")
def log():
    seen = []
    seen.append(request.args.get("q"))
    RECENT.append(request.path)
    COUNTS["hits"] += 1
    g.items = seen
    return "ok"


@app.post("/login")
def login():
    SESSIONS[request.form["user"]] = True
    return "ok"


@app.post("/logout")
def logout():
    SESSIONS.pop(request.form["user"], None)
    return "ok"
