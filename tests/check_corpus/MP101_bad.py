from flask import Flask, request

app = Flask(__name__)
SEEN = []
BY_USER = {}
VISITORS: set = set()


def remember(item):
    SEEN.append(item)  # expect: MP101


@app.route("/log")
def log():
    SEEN.append(request.args.get("q"))  # expect: MP101
    BY_USER[request.remote_addr] = request.headers.get("User-Agent")  # expect: MP101
    VISITORS.add(request.remote_addr)  # expect: MP101
    remember(request.path)
    return "ok"
