import os

from flask import Flask

app = Flask(__name__)
app.config["DEBUG"] = os.environ.get("FLASK_DEBUG") == "1"


@app.route("/")
def index():
    return "hello"


if __name__ == "__main__":
    app.run(host="127.0.0.1")
