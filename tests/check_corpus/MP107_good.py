import json
from functools import lru_cache

import pandas as pd
from flask import Flask

app = Flask(__name__)
with open("MP107_settings.json") as f:
    SETTINGS = json.load(f)


@lru_cache(maxsize=1)
def prices():
    return pd.read_csv("prices.csv")


@app.route("/")
def index():
    return str(len(prices())) + SETTINGS["name"]
