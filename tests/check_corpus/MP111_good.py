from concurrent.futures import ThreadPoolExecutor

from flask import Flask, request

app = Flask(__name__)
EXECUTOR = ThreadPoolExecutor(max_workers=4)


def send_email(address):
    pass


@app.post("/signup")
def signup():
    EXECUTOR.submit(send_email, request.form["email"])
    return "ok"
