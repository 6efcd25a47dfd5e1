import httpx
import requests
from flask import Flask

app = Flask(__name__)


@app.route("/weather")
def weather():
    session = requests.Session()  # expect: MP109
    return session.get("https://example.invalid/weather").text


@app.route("/rates")
def rates():
    client = httpx.Client()  # expect: MP109
    return client.get("https://example.invalid/rates").text
