import httpx
import requests
from flask import Flask

app = Flask(__name__)
SESSION = requests.Session()


@app.route("/weather")
def weather():
    return SESSION.get("https://example.invalid/weather").text


@app.route("/rates")
def rates():
    with httpx.Client() as client:
        return client.get("https://example.invalid/rates").text


@app.route("/news")
def news():
    session = requests.Session()
    try:
        return session.get("https://example.invalid/news").text
    finally:
        session.close()
