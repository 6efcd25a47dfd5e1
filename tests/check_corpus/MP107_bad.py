import pickle

import numpy as np
import pandas as pd
from flask import Flask

app = Flask(__name__)
PRICES = pd.read_csv("prices.csv")  # expect: MP107
EMBEDDINGS = np.load("embeddings.npy")  # expect: MP107
with open("model.pkl", "rb") as f:
    MODEL = pickle.load(f)  # expect: MP107


@app.route("/")
def index():
    return str(len(PRICES))
