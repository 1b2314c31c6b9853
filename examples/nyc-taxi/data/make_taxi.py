"""Generate the NYC taxi sample's two raw files in the layout of Azure ML's nyc-taxi pipeline
sample (greenTaxiData.csv, yellowTaxiData.csv): the real files are TLC trip records, which
cannot be downloaded here, so trips are drawn with a seeded generator (fare ~ 2.5 + 2.5/mile +
noise, a few trips outside the city and zero-distance ones for the transform step to drop).

    python data/make_taxi.py        # rewrites both files, byte-identical for the same seed
"""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROWS = 400
SEED = 42
GREEN = ["vendorID", "lpepPickupDatetime", "lpepDropoffDatetime", "passengerCount", "tripDistance",
         "pickupLongitude", "pickupLatitude", "dropoffLongitude", "dropoffLatitude", "storeAndFwdFlag",
         "fareAmount"]
YELLOW = ["vendorID", "tpepPickupDateTime", "tpepDropoffDateTime", "passengerCount", "tripDistance",
          "startLon", "startLat", "endLon", "endLat", "storeAndFwdFlag", "fareAmount"]


def trips(rng: random.Random, n: int) -> list[list]:
    start = datetime(2016, 1, 1)
    out = []
    for i in range(n):
        pickup = start + timedelta(seconds=rng.randrange(31 * 24 * 3600))
        distance = round(rng.uniform(0.3, 12.0), 2) if i % 40 else 0.0  # a few zero-distance trips
        minutes = distance * rng.uniform(2.5, 4.5) + rng.uniform(1, 5)
        dropoff = pickup + timedelta(minutes=minutes)
        lon, lat = rng.uniform(-74.05, -73.75), rng.uniform(40.55, 40.85)
        if i % 50 == 7:
            lon = -75.2  # outside the city: the transform step filters it out
        dlon, dlat = lon + rng.uniform(-0.05, 0.05), lat + rng.uniform(-0.05, 0.05)
        fare = round(2.5 + 2.5 * distance + rng.gauss(0, 1.0), 2) if distance else 0.0
        flag = "Y" if rng.random() < 0.02 else "N"
        out.append([rng.choice([1, 2]), pickup.strftime("%Y-%m-%d %H:%M:%S"), dropoff.strftime("%Y-%m-%d %H:%M:%S"),
                    rng.choice([1, 1, 1, 2, 3, 5]), distance, round(lon, 6), round(lat, 6), round(dlon, 6),
                    round(dlat, 6), flag, fare])
    return out


def main() -> None:
    rng = random.Random(SEED)
    for name, header in (("greenTaxiData.csv", GREEN), ("yellowTaxiData.csv", YELLOW)):
        with open(HERE / name, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(trips(rng, ROWS))


if __name__ == "__main__":
    main()
