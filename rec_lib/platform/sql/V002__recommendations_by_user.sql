-- One row per user: the newest run's list in rank order, for an e-mail or a page that shows it whole.
CREATE OR REPLACE VIEW {{view}} AS
SELECT user_id, run_date, model_version,
       count(*) AS n_items,
       transform(array_sort(collect_list(struct(rank, item_id, title, score, source))),
                 x -> x.item_id) AS item_ids,
       array_sort(collect_list(struct(rank, item_id, title, score, source))) AS items
FROM {{view:recommendations_latest}}
GROUP BY user_id, run_date, model_version
