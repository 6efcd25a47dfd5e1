import csv
import json
import os
from functools import lru_cache
from pathlib import Path

from flask import Flask

app = Flask(__name__)
HERE = os.path.dirname(os.path.abspath(__file__))
SETTINGS_PATH = os.path.join(HERE, "MP107_settings.json")
CATALOG_PATH = os.path.join(HERE, "data", "catalog.json")
PRODUCTS_FILE = Path(__file__).parent / "products.csv"

with open(SETTINGS_PATH) as fh:
    SETTINGS = json.load(fh)  # small, and found: 33 bytes
with open("config.json") as fh:
    CONFIG = json.load(fh)  # not found, and its name says settings


@lru_cache(maxsize=1)
def catalog():
    with open(CATALOG_PATH) as fh:
        return json.load(fh)


@lru_cache(maxsize=1)
def products():
    with PRODUCTS_FILE.open() as fh:
        return list(csv.DictReader(fh))


@app.route("/item/<name>")
def item(name):
    return catalog()[name] + products()[0]["name"] + SETTINGS["name"] + CONFIG["name"]
