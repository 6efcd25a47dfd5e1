import json

import pandas as pd
from flask import Flask


def load_prices():
    return pd.read_csv("prices.csv")


def read_products(path):
    with open(path) as f:
        return json.load(f)


def load_all():
    return {"products": read_products("data/products.json")}


def create_app():
    app = Flask(__name__)
    app.config["PRICES"] = load_prices()
    return app


PRICES = load_prices()  # expect: MP107
CATALOGUE = load_all()  # expect: MP107
app = create_app()  # expect: MP107
