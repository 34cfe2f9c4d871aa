-- The newest run's recommendations, one row per (user, rank), with the item's title and category.
-- Public since 0.1: columns are only ever added.
CREATE OR REPLACE VIEW {{view}} AS
SELECT r.user_id, r.rank, r.item_id, i.title, i.category, r.score, r.source, r.model_version,
       r.run_date, r.generated_at
FROM {{table:recommendations}} r
JOIN {{table:items}} i ON r.item_id = i.item_id
WHERE r.run_date = (SELECT max(run_date) FROM {{table:recommendations}})
