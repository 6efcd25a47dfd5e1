import threading
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, request

app = Flask(__name__)


def send_email(address):
    pass


@app.post("/signup")
def signup():
    threading.Thread(target=send_email, args=(request.form["email"],)).start()  # expect: MP111
    return "ok"


@app.post("/invite")
def invite():
    pool = ThreadPoolExecutor(max_workers=2)  # expect: MP111
    pool.submit(send_email, request.form["email"])
    return "ok"
