import csv
import json
import os
from pathlib import Path

from flask import Flask

app = Flask(__name__)
HERE = os.path.dirname(os.path.abspath(__file__))
CATALOG_PATH = os.path.join(HERE, "data", "catalog.json")
PRODUCTS_FILE = Path(__file__).parent / "products.csv"
CITIES = "cities.jsonl"

with open(CATALOG_PATH) as fh:
    CATALOG = json.load(fh)  # expect: MP107
with PRODUCTS_FILE.open() as fh:
    PRODUCTS = list(csv.DictReader(fh))  # expect: MP107
with open(PRODUCTS_FILE, encoding="utf-8") as fh:
    LINES = fh.readlines()  # expect: MP107
NAMES = [json.loads(line)["name"] for line in open(CITIES)]  # expect: MP107
with open("catalog.json") as fh:
    PRICES = json.load(fh)  # expect: MP107


@app.route("/item/<name>")
def item(name):
    return CATALOG[name] + PRODUCTS[0]["name"] + LINES[0] + NAMES[0] + PRICES[name]
