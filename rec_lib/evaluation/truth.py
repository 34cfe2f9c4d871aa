"""The ground-truth contract: what a shop with a known truth (the generated demo shop, a simulation)
provides so the evaluation can rank by true affinity (the `oracle` method), without the evaluation
knowing who made it.

A ground-truth folder (`evaluate.ground_truth`; default `<paths.input>/ground_truth` when it exists):

    users.parquet   user_id string, taste array<float> (d values)
    items.parquet   item_id string, vector array<float> (d values), popularity double
    params.json     {"beta": <float>, ...}

    affinity(u, i) = beta * (taste_u . vector_i) + popularity_i

The demo generator (rec_lib.demo) writes its world in this form; its tests hold that the events it
generates follow this affinity. The evaluation reads the folder with Spark
(rec_lib.evaluation.inputs: `ground_truth_folder`, `oracle_affinity_rows`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def affinity(truth_users: pd.DataFrame, truth_items: pd.DataFrame, beta: float) -> np.ndarray:
    """[n_users, n_items] true affinity of the contract, rows and columns in the frames' order."""
    tastes = np.stack(truth_users["taste"].to_numpy())
    vectors = np.stack(truth_items["vector"].to_numpy())
    return beta * tastes @ vectors.T + truth_items["popularity"].to_numpy()[None, :]
