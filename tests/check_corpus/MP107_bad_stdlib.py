import csv
import json
import os
from pathlib import Path

import yaml
from flask import Flask

app = Flask(__name__)
HERE = os.path.dirname(__file__)
CATALOGUE = json.load(open(os.path.join(HERE, "data", "catalogue.json")))  # expect: MP107
WORDS = open("words.csv").read().split(",")  # expect: MP107
with open("data/stations.csv") as f:
    STATIONS = list(csv.reader(f))  # expect: MP107
with open("cities.jsonl") as f:
    CITIES = [json.loads(line) for line in f]  # expect: MP107
with open(Path(__file__).parent / "data" / "tariffs.json") as f:
    TARIFFS = json.load(f)  # expect: MP107
RATES = yaml.safe_load(Path("data/rates.yaml").read_text())  # expect: MP107
TILES = (Path(__file__).parent / "data" / "tiles.bin").read_bytes()  # expect: MP107
BANNED = set()
for line in open("banned.txt.gz"):  # expect: MP107
    BANNED.add(line)


@app.route("/station/<int:n>")
def station(n):
    return ",".join(STATIONS[n])
