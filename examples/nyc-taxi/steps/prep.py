"""prep: the green and yellow trips under one set of column names, rows with no data dropped.

Each raw input is a checked dataset folder (dataset.json and a Parquet file per split); the
output folder gets data.csv. The spec passes the folders as ${{inputs.*}} / ${{outputs.*}}.
"""

import argparse
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

parser = argparse.ArgumentParser("prep")
parser.add_argument("--green_data", required=True)
parser.add_argument("--yellow_data", required=True)
parser.add_argument("--prep_data", required=True)
args = parser.parse_args()

USEFUL = ["cost", "distance", "dropoff_datetime", "dropoff_latitude", "dropoff_longitude", "passengers",
          "pickup_datetime", "pickup_latitude", "pickup_longitude", "store_forward", "vendor"]
GREEN = {"vendorID": "vendor", "lpepPickupDatetime": "pickup_datetime", "lpepDropoffDatetime": "dropoff_datetime",
         "storeAndFwdFlag": "store_forward", "pickupLongitude": "pickup_longitude",
         "pickupLatitude": "pickup_latitude", "dropoffLongitude": "dropoff_longitude",
         "dropoffLatitude": "dropoff_latitude", "passengerCount": "passengers", "fareAmount": "cost",
         "tripDistance": "distance"}
YELLOW = {"vendorID": "vendor", "tpepPickupDateTime": "pickup_datetime", "tpepDropoffDateTime": "dropoff_datetime",
          "storeAndFwdFlag": "store_forward", "startLon": "pickup_longitude", "startLat": "pickup_latitude",
          "endLon": "dropoff_longitude", "endLat": "dropoff_latitude", "passengerCount": "passengers",
          "fareAmount": "cost", "tripDistance": "distance"}


def read_checked(folder: str) -> pa.Table:
    manifest = json.loads((Path(folder) / "dataset.json").read_text())
    return pa.concat_tables([pq.read_table(Path(folder) / f) for f in manifest["splits"].values()])


def cleanse(table: pa.Table, names: dict) -> pa.Table:
    table = table.rename_columns([names.get(c, c) for c in table.column_names]).select(USEFUL)
    any_value = None
    for c in USEFUL:
        valid = pc.is_valid(table[c])
        any_value = valid if any_value is None else pc.or_(any_value, valid)
    table = table.filter(any_value)
    for c in ("pickup_datetime", "dropoff_datetime", "store_forward"):
        table = table.set_column(table.column_names.index(c), c, pc.cast(table[c], pa.string()))
    return table


green = cleanse(read_checked(args.green_data), GREEN)
yellow = cleanse(read_checked(args.yellow_data), YELLOW)
merged = pa.concat_tables([green, yellow.cast(green.schema)])
Path(args.prep_data).mkdir(parents=True, exist_ok=True)
pacsv.write_csv(merged, Path(args.prep_data) / "data.csv")
print(f"prep: {green.num_rows} green + {yellow.num_rows} yellow trips")
