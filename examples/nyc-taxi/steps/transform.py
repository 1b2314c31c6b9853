"""transform: trips inside the city, store_forward as 0/1, date parts as features, and only
trips with a positive distance and cost (--clean_data folder -> --transformed_data folder)."""

import argparse
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

parser = argparse.ArgumentParser("transform")
parser.add_argument("--clean_data", required=True)
parser.add_argument("--transformed_data", required=True)
args = parser.parse_args()

t = pacsv.read_csv(Path(args.clean_data) / "data.csv")


def between(col: str, lo: float, hi: float):
    return pc.and_(pc.greater_equal(t[col], lo), pc.less_equal(t[col], hi))


inside = between("pickup_longitude", -74.09, -73.72)
for cond in (between("pickup_latitude", 40.53, 40.88), between("dropoff_longitude", -74.72, -73.72),
             between("dropoff_latitude", 40.53, 40.88)):
    inside = pc.and_(inside, cond)
t = t.filter(inside)
flag = pc.fill_null(pc.cast(t["store_forward"], pa.string()), "N")
t = t.set_column(t.column_names.index("store_forward"), "store_forward",
                 pc.cast(pc.invert(pc.or_(pc.equal(flag, "N"), pc.equal(flag, "0"))), pa.int64()))
t = t.set_column(t.column_names.index("distance"), "distance", pc.fill_null(pc.cast(t["distance"], pa.float64()), 0.0))
for when in ("pickup", "dropoff"):
    text = pc.utf8_slice_codeunits(pc.cast(t[f"{when}_datetime"], pa.string()), 0, 19)  # drop fractions
    ts = pc.strptime(text, format="%Y-%m-%d %H:%M:%S", unit="s")
    parts = {"weekday": pc.day_of_week(ts), "month": pc.month(ts), "monthday": pc.day(ts), "hour": pc.hour(ts),
             "minute": pc.minute(ts), "second": pc.second(ts)}
    for name, values in parts.items():
        t = t.append_column(f"{when}_{name}", pc.cast(values, pa.int64()))
    t = t.drop_columns([f"{when}_datetime"])
t = t.filter(pc.and_(pc.greater(t["distance"], 0), pc.greater(t["cost"], 0)))
Path(args.transformed_data).mkdir(parents=True, exist_ok=True)
pacsv.write_csv(t, Path(args.transformed_data) / "data.csv")
print(f"transform: {t.num_rows} trips")
