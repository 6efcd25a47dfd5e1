import csv
import json
import os
from functools import lru_cache
from pathlib import Path

import yaml
from flask import Flask

app = Flask(__name__)
HERE = os.path.dirname(__file__)
VERSION = open("VERSION").read().strip()  # a one-line file: not data
with open(os.path.join(HERE, "MP107_settings.json")) as f:
    SETTINGS = json.load(f)  # small, and found: 33 bytes


@lru_cache(maxsize=1)
def catalogue():
    return json.load(open(os.path.join(HERE, "data", "catalogue.json")))


@lru_cache(maxsize=1)
def stations():
    with open("data/stations.csv") as f:
        return list(csv.reader(f))


def cities():
    with open("cities.jsonl") as f:
        for line in f:
            yield json.loads(line)


@lru_cache(maxsize=1)
def rates():
    with open("data/rates.yaml") as f:
        return yaml.safe_load(f)


@app.route("/station/<int:n>")
def station(n):
    return ",".join(stations()[n]) + str(len(catalogue())) + str(rates()) + VERSION + SETTINGS["name"]


if __name__ == "__main__":
    PRELOADED = list(csv.reader(open("data/stations.csv")))
    app.run()
