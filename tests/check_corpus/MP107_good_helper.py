import json
from functools import lru_cache

import pandas as pd
from flask import Flask, g


@lru_cache(maxsize=1)
def load_prices():
    return pd.read_csv("prices.csv")


def read_products(path):
    with open(path) as f:
        return json.load(f)


def create_app():
    app = Flask(__name__)

    @app.route("/price/<sku>")
    def price(sku):
        return str(load_prices().loc[sku])

    @app.before_request
    def products():
        g.products = read_products("data/products.json")

    return app


app = create_app()
