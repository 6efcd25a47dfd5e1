from functools import lru_cache

import numpy as np
import pandas as pd
from flask import Flask

app = Flask(__name__)


@lru_cache(maxsize=1)
def sales():
    return pd.read_parquet("sales.parquet")


@lru_cache(maxsize=1)
def distances():
    return np.load("distances.npy", mmap_mode="r")  # memory-mapped, on first use


class Lookup:
    @staticmethod
    @lru_cache(maxsize=1)
    def table():
        return pd.read_csv("lookup.csv")


@app.route("/")
def index():
    return str(len(sales())) + str(distances().shape) + str(len(Lookup.table()))
