from functools import cached_property, lru_cache


@lru_cache(maxsize=128)
def price_of(sku):
    return len(sku)


class PriceBook:
    def __init__(self, rows):
        self.rows = rows

    @cached_property
    def total(self):
        return sum(self.rows.values())

    @staticmethod
    @lru_cache(maxsize=128)
    def normalise(sku):
        return sku.upper()
