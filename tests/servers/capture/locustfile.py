"""Production-like traffic for the orders app: customers browse and order, each order with a new
id, a third of them gift-wrapped (the only ones the app keeps)."""
from __future__ import annotations

import itertools
import random

from locust import FastHttpUser, constant_throughput, task

_ids = itertools.count(random.randint(1, 10**6) * 1000)


class Customer(FastHttpUser):
    """About 20 requests a second: mostly browsing, some orders."""

    wait_time = constant_throughput(20)

    @task(4)
    def home(self) -> None:
        self.client.get("/")

    @task(3)
    def orders(self) -> None:
        self.client.get("/orders")

    @task(3)
    def order(self) -> None:
        self.client.post("/orders", json={"id": next(_ids), "gift": random.random() < 1 / 3, "note": "leave at door"})
