"""The scoring job on small hand-made embedding tables: brute-force equality, seen items, rules,
fallbacks, the partition per run_date and the SQL view."""
from datetime import date

import numpy as np
import pytest

from rec_lib.core import config as rc
from rec_lib.core.schema import ITEM_EMBEDDINGS, LIST_METRICS, RECOMMENDATIONS
from rec_lib.platform import io
from rec_lib.scoring.job import NoCandidates, ScoringError, run_score_job
from tests.helpers import (
    N_ITEMS,
    N_USERS,
    REPO,
    SCORE_EVENTS,
    SCORE_ITEMS,
    SCORE_USERS,
    brute,
    hand_made_embeddings,
    lists,
)


@pytest.fixture
def scored_shop(featured, feature_config):
    featured(feature_config, items=SCORE_ITEMS, users=SCORE_USERS, events=SCORE_EVENTS)
    return feature_config


def score_config(feature_config, *settings):
    """The scoring job's config on the small shop: lists of 4 by score, no floor or quota (unless set)."""
    return rc.load_config(rc.ScoreJobConfig, REPO / "conf/local.yaml", [
        f"paths.warehouse={feature_config.paths.warehouse}", "run.now=2026-10-31T12:00:00Z", "run.run_id=score-test",
        "score.k=4", "score.show_users=2", "score.min_new_item_exposure=0", "score.order=score",
        "score.new_item_quota=0", *settings])


def test_model_lists_equal_brute_force_and_skip_seen_items(spark, scored_shop):
    U, V, b = hand_made_embeddings(spark, scored_shop.paths.warehouse)
    # the whole catalogue, in 3 tiles of 12, 12 and 6 candidates
    summary = run_score_job(spark, score_config(scored_shop, "score.candidates=all", "score.max_tile_items=12"))
    got = lists(spark, scored_shop.paths.warehouse)
    seen = {0: {0, 1}, 1: {5}, 2: {7}}
    for u in range(N_USERS):
        expected = brute(U, V, b, u, range(N_ITEMS), seen.get(u, set()), 4)
        assert got[f"u{u:02d}"].item_id.tolist() == expected
        np.testing.assert_allclose(got[f"u{u:02d}"].score, [float(U[u] @ V[int(i[1:])]) + b[int(i[1:])] for i in expected],
                                   rtol=1e-5)
    assert set(got["u00"].source) == {"model"} and summary.n_model_users == N_USERS
    assert summary.n_candidates == N_ITEMS and summary.n_fallback_users == 1
    assert summary.rows == (N_USERS + 1) * 4  # 12 model lists and u99's fallback list, 4 each
    # by default the launches only: odd ids launched 2026-10-25, within 14 days of the run date (even
    # ones on 2026-06-01 are established, even with fewer than max_new_item_users users: no long tail)
    summary = run_score_job(spark, score_config(scored_shop))
    got = lists(spark, scored_shop.paths.warehouse)
    assert summary.n_candidates == summary.n_new_candidates == N_ITEMS // 2
    for u in range(N_USERS):
        assert got[f"u{u:02d}"].item_id.tolist() == brute(U, V, b, u, range(1, N_ITEMS, 2), seen.get(u, set()), 4)
    # the long-tail pool adds the established items with fewer than max_new_item_users users (all even
    # ones here: at most 2 users each), not as new
    summary = run_score_job(spark, score_config(scored_shop, "score.long_tail=true"))
    assert summary.n_candidates == N_ITEMS and summary.n_new_candidates == N_ITEMS // 2


def test_every_row_says_why_and_similar_to_names_an_item_of_the_users_history(spark, scored_shop):
    U, V, b = hand_made_embeddings(spark, scored_shop.paths.warehouse, explained=True)
    summary = run_score_job(spark, score_config(scored_shop, "score.candidates=all"))
    got = lists(spark, scored_shop.paths.warehouse)
    history = {"u00": ["I00", "I01"], "u01": ["I05"], "u02": ["I07"]}  # SCORE_EVENTS
    kinds = set()
    for user, rows in got.items():
        for row in rows.itertuples():
            why = row.reason
            kinds.add(why["kind"])
            if user == "u99":  # no embedding: the fallback of its top category
                assert (why["kind"], why["item_id"], why["detail"], why["share"]) == ("fallback", None, "category=b", None)
                continue
            i = int(row.item_id[1:])
            # the parts: the tower (U.(V_i - mean V)) and the prior (b_i - mean b); the larger names the kind,
            # the tower only with a history unless the prior does not lift the item
            tower = float(U[int(user[1:])] @ (V[i] - V.mean(axis=0)))
            prior = float(b[i] - b.mean())
            expected = "similar_to" if tower > prior and (user in history or prior <= 0) else "popular_launch"
            assert why["kind"] == expected, (user, row.item_id, tower, prior)
            # the share: the kind's part of the positive contributions
            mine, lifted = max(tower if expected == "similar_to" else prior, 0), max(tower, 0) + max(prior, 0)
            assert why["share"] == pytest.approx(mine / lifted if lifted > 0 else 0.0, abs=1e-5)
            if expected == "popular_launch":
                assert why["detail"] == f"expected_users_per_day={np.exp(b[i]):.2f}" and why["item_id"] is None
            elif user in history:  # the user's history item closest to the recommended one (cosine)
                cos = {h: float(V[int(h[1:])] @ V[i]) / np.linalg.norm(V[int(h[1:])]) for h in history[user]}
                assert why["item_id"] == max(cos, key=cos.get) and why["detail"] == "part=tower"
            else:
                assert why["item_id"] is None
    assert kinds == {"similar_to", "popular_launch", "fallback"}
    assert any("reasons: similar_to" in line for line in summary.lines())
    assert sum(v for name, v in summary.figures.items() if name.startswith("reason_share_")) == pytest.approx(1.0)
    # score.reasons=false: the same lists, reason null
    run_score_job(spark, score_config(scored_shop, "score.candidates=all", "score.reasons=false"))
    plain = lists(spark, scored_shop.paths.warehouse)
    assert all(plain[u].item_id.tolist() == got[u].item_id.tolist() for u in got)
    assert all(r is None for rows in plain.values() for r in rows.reason)


def test_fallback_for_users_without_an_embedding(spark, scored_shop):
    hand_made_embeddings(spark, scored_shop.paths.warehouse)
    run_score_job(spark, score_config(scored_shop, "score.candidates=all"))
    u99 = lists(spark, scored_shop.paths.warehouse)["u99"]
    # u99's top category is 'b' (I04 purchased, weight 8 > I07 viewed, 'b' too): popular 'b' items
    # first. Popularity: I04 (u99 purchase) and I07 (two views) lead; both are seen by u99 and left out;
    # the remaining 'b' items (I01, I10, I13, ...) have no interactions except I01 (u00's view).
    assert u99.item_id.tolist() == ["I01", "I10", "I13", "I16"]
    assert set(u99.source) == {"fallback_category"}
    # item_embeddings written before reasons: the lists say nothing rather than something wrong
    assert all(r is None for rows in lists(spark, scored_shop.paths.warehouse).values() for r in rows.reason)


def test_rules_hold_and_rerun_replaces_the_run_date_only(spark, scored_shop):
    hand_made_embeddings(spark, scored_shop.paths.warehouse)
    # in tiles of 7 candidates: each tile keeps its groups' best, the rules pick from their union
    cfg = score_config(scored_shop, "score.candidates=all", "score.max_per_category=1", "score.k=3",
                       "score.new_item_quota=2", "score.max_tile_items=7")
    run_score_job(spark, cfg)
    got = lists(spark, scored_shop.paths.warehouse)
    for u in range(N_USERS):
        rows = got[f"u{u:02d}"]
        idx = rows.item_id.str[1:].astype(int)
        assert len(rows) == 3 and len(set(idx % 3)) == 3  # one per category
        assert (idx % 2 == 1).sum() >= 2  # at least 2 new (odd ids launched 2026-10-25)

    warehouse = scored_shop.paths.warehouse
    run_score_job(spark, score_config(scored_shop, "score.run_date=2026-10-30"))
    run_score_job(spark, cfg)  # the same run_date again: replaced, not appended
    table = io.read_table(spark, warehouse, RECOMMENDATIONS)
    per_date = {str(r[0]): r[1] for r in table.groupBy("run_date").count().collect()}
    assert per_date["2026-10-31"] == (N_USERS + 1) * 3
    assert "2026-10-30" in per_date
    # analysts: plain SQL on the view (the newest run_date, with titles)
    latest = spark.sql("SELECT user_id, rank, title FROM recommendations_latest WHERE user_id = 'u03' ORDER BY rank").collect()
    assert [r.rank for r in latest] == [1, 2, 3] and all(r.title.startswith("Item ") for r in latest)
    assert spark.sql("SELECT max(run_date) FROM recommendations_latest").first()[0] == date(2026, 10, 31)
    # score.keep_run_dates=1: a backfill of the 29th keeps the newest date and its own; the 30th goes
    backfill = run_score_job(spark, score_config(scored_shop, "score.run_date=2026-10-29", "score.keep_run_dates=1"))
    kept = {str(r[0]): r[1] for r in io.read_table(spark, warehouse, RECOMMENDATIONS).groupBy("run_date").count().collect()}
    assert sorted(kept) == ["2026-10-29", "2026-10-31"] and kept["2026-10-31"] == (N_USERS + 1) * 3
    assert backfill.removed_run_dates == [date(2026, 10, 30)] and backfill.removed_rows == per_date["2026-10-30"]
    assert spark.sql("SELECT max(run_date) FROM recommendations_latest").first()[0] == date(2026, 10, 31)


def test_missing_or_mismatched_embeddings_and_no_candidates(spark, scored_shop):
    with pytest.raises(ScoringError, match="table user_embeddings not found"):
        run_score_job(spark, score_config(scored_shop))
    hand_made_embeddings(spark, scored_shop.paths.warehouse)
    # a day with nothing launched is reported, and the run goes on, unless score.required says otherwise
    skipped = run_score_job(spark, score_config(scored_shop, "score.run_date=2026-05-01"))
    assert isinstance(skipped, NoCandidates) and "no candidate items on 2026-05-01" in skipped.lines()[0]
    with pytest.raises(ScoringError, match="no candidate items on 2026-05-01"):
        run_score_job(spark, score_config(scored_shop, "score.run_date=2026-05-01", "score.required=true"))
    items = io.read_table(spark, scored_shop.paths.warehouse, ITEM_EMBEDDINGS)
    io.overwrite_table(items.withColumn("model_version", items.model_version.substr(1, 0)), ITEM_EMBEDDINGS,
                       scored_shop.paths.warehouse)
    with pytest.raises(ScoringError, match="different models"):
        run_score_job(spark, score_config(scored_shop))


def test_the_exposure_floor_gives_every_launch_its_users_at_the_lowest_places(spark, scored_shop):
    U, V, b = hand_made_embeddings(spark, scored_shop.paths.warehouse)
    seen = {0: {0, 1}, 1: {5}, 2: {7}}
    launches = range(1, N_ITEMS, 2)
    summary = run_score_job(spark, score_config(scored_shop, "score.min_new_item_exposure=2", "score.max_floor_slots=2"))
    got = lists(spark, scored_shop.paths.warehouse)
    shown = {}
    for u in range(N_USERS):
        rows = got[f"u{u:02d}"]
        expected = brute(U, V, b, u, launches, seen.get(u, set()), 4)
        inserted = [i for i in rows.item_id if i not in expected]
        # a list keeps its own top 4 but for at most 2 places given to floor items (each taking the
        # place of the lowest entry that is not itself another launch's floor pair)
        assert len(inserted) <= 2 and len(rows) == 4 and len(set(rows.item_id)) == 4
        assert list(rows.score) == sorted(rows.score, reverse=True)  # still in score order
        for i in rows.item_id:
            shown[i] = shown.get(i, 0) + 1
    # every launch is in at least 2 of the 12 model lists (u99 has a fallback list)
    assert all(shown.get(f"I{i:02d}", 0) >= 2 for i in launches), str(sorted(shown.items()))
    assert summary.figures["floor_reached"] == 1.0
    # the figures are in list_metrics, from the written lists
    figures = {r.metric: r.value for r in io.read_table(spark, scored_shop.paths.warehouse, LIST_METRICS)
               .where("run_id = 'score-test' AND source = 'production'").collect()}
    assert figures["floor_reached"] == 1.0 and figures["lists"] == N_USERS + 1
    assert figures["candidate_coverage"] == 1.0 and figures["candidates"] == N_ITEMS // 2
    # and without the floor, some launches reach fewer: the floor did this
    run_score_job(spark, score_config(scored_shop))
    plain = lists(spark, scored_shop.paths.warehouse)
    assert min(sum(f"I{i:02d}" in set(plain[f"u{u:02d}"].item_id) for u in range(N_USERS)) for i in launches) < 2


def test_personal_order_opens_each_list_with_its_most_personal_item(spark, scored_shop):
    U, V, b = hand_made_embeddings(spark, scored_shop.paths.warehouse)
    seen = {0: {0, 1}, 1: {5}, 2: {7}}
    run_score_job(spark, score_config(scored_shop, "score.order=personal"))
    got = lists(spark, scored_shop.paths.warehouse)
    for u in range(N_USERS):
        # the same 4 items as by score, ordered by U . V alone (the score minus the item's bias)
        chosen = brute(U, V, b, u, range(1, N_ITEMS, 2), seen.get(u, set()), 4)
        by_personal = sorted(chosen, key=lambda i: (-float(U[u] @ V[int(i[1:])]), i))
        assert got[f"u{u:02d}"].item_id.tolist() == by_personal


def test_the_history_rows_of_a_block_keep_each_users_newest_items_in_order():
    from rec_lib.scoring.tiles import TaskHistory

    history = object.__new__(TaskHistory)  # the arrays a task maps, without the shipped files
    history.depth = 2
    names = np.array(["b", "d", "a", "c"])  # the file's rows: b 0, d 1, a 2, c 3
    history.order = np.argsort(names, kind="stable")
    history.sorted_ids = names[history.order]
    # user 0: c, zz (not in the file), a -> newest 2: c, zz -> [3]; user 1: none; user 2: d, b, a -> [1, 0]
    rows = history.rows([np.array(["c", "zz", "a"], dtype=object), None, ["d", "b", "a"]])
    assert rows.tolist() == [[3, -1], [-1, -1], [1, 0]]
    assert history.rows([None, []]).shape == (2, 0)
