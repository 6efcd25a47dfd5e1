"""Traffic for watch's detection tests: a weighted mix of the shop's five routes, as Locust
users send it. Only a POST /orders whose form says ``gift=1`` (half of them) is kept by the app."""
from __future__ import annotations

import random

from locust import FastHttpUser, constant_throughput, task


class Shopper(FastHttpUser):
    """One shopper: about 20 requests a second, a random mix weighted like a shop's."""

    wait_time = constant_throughput(20)

    @task(6)
    def browse(self) -> None:
        self.client.get(f"/items/{random.randint(1, 5000)}", name="/items/[id]")

    @task(4)
    def search(self) -> None:
        self.client.get("/search")

    @task(3)
    def index(self) -> None:
        self.client.get("/")

    @task(3)
    def order(self) -> None:
        gift = random.random() < 0.5
        self.client.post("/orders", data={"note": "hello", "gift": "1" if gift else "0"})

    @task(1)
    def health(self) -> None:
        self.client.get("/health")
