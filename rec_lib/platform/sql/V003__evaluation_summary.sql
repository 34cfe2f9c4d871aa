-- evaluation_metrics with one column per metric: one row per (run, k, method).
-- recall_diff_low .. ndcg_diff_high (on a baseline's rows): the 95% paired bootstrap interval of the
-- model's value minus the baseline's; an interval wholly below 0 is a loss beyond chance.
CREATE OR REPLACE VIEW {{view}} AS
SELECT run_id, model_version, cutoff, test_end, evaluated_at, k, method,
       max(CASE WHEN metric RLIKE '^recall@[0-9]+$' THEN value END) AS recall,
       max(CASE WHEN metric RLIKE '^ndcg@[0-9]+$' THEN value END) AS ndcg,
       max(CASE WHEN metric RLIKE '^hit_rate@[0-9]+$' THEN value END) AS hit_rate,
       max(CASE WHEN metric RLIKE '^mrr@[0-9]+$' THEN value END) AS mrr,
       max(CASE WHEN metric RLIKE '^coverage@[0-9]+$' THEN value END) AS coverage,
       max(CASE WHEN metric RLIKE '^mean_popularity@[0-9]+$' THEN value END) AS mean_popularity,
       max(CASE WHEN metric RLIKE '^recall@[0-9]+$' THEN int(substring_index(metric, '@', -1)) END) AS top_k,
       max(CASE WHEN metric = 'users' THEN value END) AS users,
       max(CASE WHEN metric = 'scorable_items' THEN value END) AS scorable_items,
       max(CASE WHEN metric RLIKE '^recall@[0-9]+_diff_low$' THEN value END) AS recall_diff_low,
       max(CASE WHEN metric RLIKE '^recall@[0-9]+_diff_high$' THEN value END) AS recall_diff_high,
       max(CASE WHEN metric RLIKE '^ndcg@[0-9]+_diff_low$' THEN value END) AS ndcg_diff_low,
       max(CASE WHEN metric RLIKE '^ndcg@[0-9]+_diff_high$' THEN value END) AS ndcg_diff_high
FROM {{table:evaluation_metrics}}
GROUP BY run_id, model_version, cutoff, test_end, evaluated_at, k, method
