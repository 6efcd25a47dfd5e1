import joblib
import numpy as np
import pandas as pd
from flask import Flask

app = Flask(__name__)
DISTANCES = np.loadtxt("distances.txt")  # expect: MP107
EVENTS = pd.read_json("events.json", lines=True)  # expect: MP107
SALES = pd.read_parquet("sales.parquet")  # expect: MP107
CLASSIFIER = joblib.load("classifier.joblib")  # expect: MP107


class Lookup:
    TABLE = pd.read_csv("lookup.csv")  # expect: MP107


@app.route("/")
def index():
    return str(len(SALES))
