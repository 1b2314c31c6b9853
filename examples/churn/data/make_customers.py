"""Regenerates customers.csv, the churn example's data (deterministic: fixed seed, stdlib only).

    python examples/churn/data/make_customers.py

1,000 synthetic subscription customers. Churn follows a logistic model of short tenure, high
charges, month-to-month contracts and support tickets, plus noise: gradient boosting reaches
an AUC of about 0.85 on a held-out 20% split, so the example's gate (AUC >= 0.75, accuracy >=
0.7) passes on any split, and fails when its threshold is raised to 0.99. production.csv is
500 more customers drawn the same way (another seed): the monitor's window, which does not drift.
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

HEADER = ["customer_id", "tenure_months", "monthly_charges", "contract", "support_tickets", "churned"]


# Logistic weights: intercept, per month of tenure, per unit of charges above 68, per support
# ticket, and per contract type.
WEIGHTS = {"intercept": -0.4, "tenure": -0.07, "charges": 0.035, "tickets": 0.6,
           "contract": {"month-to-month": 1.4, "one-year": -0.3, "two-year": -1.6}}


def rows(n: int = 1000, seed: int = 2024, weights: dict = WEIGHTS) -> list[list]:
    w = weights
    rng = random.Random(seed)
    out = []
    for i in range(1, n + 1):
        contract = rng.choices(["month-to-month", "one-year", "two-year"], weights=[5, 3, 2])[0]
        base = {"month-to-month": 14, "one-year": 30, "two-year": 44}[contract]
        tenure = max(1, min(72, int(rng.expovariate(1 / base)) + 1))
        charges = round(min(119.95, max(18.25, rng.gauss(68, 24))), 2)
        tickets = min(9, int(rng.expovariate(1 / 1.4)))
        logit = (w["intercept"] + w["tenure"] * tenure + w["charges"] * (charges - 68) + w["tickets"] * tickets
                 + w["contract"][contract])
        churned = 1 if rng.random() < 1 / (1 + math.exp(-logit)) else 0
        out.append([f"C{i:04d}", tenure, f"{charges:.2f}", contract, tickets, churned])
    return out


def write(path: Path, data: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        w.writerows(data)


def main() -> None:
    write(Path(__file__).with_name("customers.csv"), rows())
    # A later month of the same customers' distribution: what the drift monitor reads (no drift).
    write(Path(__file__).with_name("production.csv"), [[f"P{r[0][1:]}", *r[1:]] for r in rows(500, seed=2025)])
    # Labelled feedback: last month's outcomes next to what the model scored (here the true
    # churn probability, so its AUC is what the data allows).
    with open(Path(__file__).with_name("feedback.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["customer_id", "churned", "prediction", "score"])
        w.writerows(feedback(300, seed=2026))


def feedback(n: int, seed: int) -> list[list]:
    w, rng = WEIGHTS, random.Random(seed)
    out = []
    for cid, tenure, charges, contract, tickets, churned in rows(n, seed=seed):
        logit = (w["intercept"] + w["tenure"] * tenure + w["charges"] * (float(charges) - 68)
                 + w["tickets"] * tickets + w["contract"][contract])
        score = 1 / (1 + math.exp(-logit))
        out.append([f"F{cid[1:]}", churned, int(score >= 0.5), f"{score:.4f}"])
    rng.shuffle(out)
    return out


if __name__ == "__main__":
    main()
