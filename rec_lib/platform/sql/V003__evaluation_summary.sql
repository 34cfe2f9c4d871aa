-- evaluation_metrics with one column per metric: one row per (run, k, method).
CREATE OR REPLACE VIEW {{view}} AS
SELECT run_id, model_version, cutoff, test_end, evaluated_at, k, method,
       max(CASE WHEN metric LIKE 'recall@%' THEN value END) AS recall,
       max(CASE WHEN metric LIKE 'ndcg@%' THEN value END) AS ndcg,
       max(CASE WHEN metric LIKE 'hit_rate@%' THEN value END) AS hit_rate,
       max(CASE WHEN metric LIKE 'mrr@%' THEN value END) AS mrr,
       max(CASE WHEN metric LIKE 'coverage@%' THEN value END) AS coverage,
       max(CASE WHEN metric LIKE 'mean_popularity@%' THEN value END) AS mean_popularity,
       max(CASE WHEN metric LIKE 'recall@%' THEN int(substring_index(metric, '@', -1)) END) AS top_k,
       max(CASE WHEN metric = 'users' THEN value END) AS users,
       max(CASE WHEN metric = 'scorable_items' THEN value END) AS scorable_items
FROM {{table:evaluation_metrics}}
GROUP BY run_id, model_version, cutoff, test_end, evaluated_at, k, method
