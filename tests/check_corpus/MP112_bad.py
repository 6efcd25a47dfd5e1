from functools import lru_cache


class PriceBook:
    def __init__(self, rows):
        self.rows = rows

    @lru_cache(maxsize=128)  # expect: MP112
    def price(self, sku):
        return self.rows[sku]
