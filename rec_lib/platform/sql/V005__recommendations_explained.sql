-- The newest run's recommendations, each with its reason (recommendations.reason) as a sentence in
-- the shop's language (sql.language: en | zh), for analysts and for the shop's own pages:
-- "because you liked <title>", "new from <brand>", "selling fast: 12 buyers in 2 days".
-- because_item_id / because_title: the item of the user's history a similar_to reason names.
-- Public since 0.2: columns are only ever added.
CREATE OR REPLACE VIEW {{view}} AS
WITH parsed AS (
  SELECT r.user_id, r.rank, r.item_id, i.title, r.score, r.source,
         r.reason.kind AS reason_kind, r.reason.item_id AS because_item_id, h.title AS because_title,
         r.reason.detail AS reason_detail, r.reason.share AS reason_share,
         i.brand,
         regexp_extract(r.reason.detail, 'users=([0-9]+)', 1) AS users,
         regexp_replace(regexp_extract(r.reason.detail, 'days=([0-9.]+)', 1), '[.]0$', '') AS days,
         regexp_extract(r.reason.detail, 'expected_users_per_day=([0-9.]+)', 1) AS per_day,
         regexp_extract(r.reason.detail, '^category=(.*)$', 1) AS category,
         regexp_extract(r.reason.detail, '^([^=#]+)[=#]', 1) AS field,
         regexp_extract(r.reason.detail, '^[^=#]+[=#](.*)$', 1) AS value,
         r.model_version, r.run_date, r.generated_at
  FROM {{table:recommendations}} r
  JOIN {{table:items}} i ON r.item_id = i.item_id
  LEFT JOIN {{table:items}} h ON r.reason.item_id = h.item_id
  WHERE r.run_date = (SELECT max(run_date) FROM {{table:recommendations}})
)
SELECT user_id, rank, item_id, title, score, source, reason_kind, because_item_id, because_title, reason_detail,
       reason_share,
       CASE
         WHEN reason_kind IS NULL THEN NULL
         WHEN {{setting:language}} = 'zh' THEN CASE reason_kind
           WHEN 'similar_to' THEN
             CASE WHEN because_title IS NOT NULL THEN concat('因为你喜欢《', because_title, '》') ELSE '为你推荐' END
           WHEN 'attribute' THEN
             CASE WHEN field = 'brand' AND brand IS NOT NULL THEN concat('来自', brand, '的新品')
                  ELSE concat('符合你的喜好：', field, ' ', value) END
           WHEN 'trending' THEN concat('热卖中：', days, '天内', users, '位买家')
           WHEN 'popular_launch' THEN concat('热门新品：预计每天', per_day, '位买家')
           WHEN 'fallback' THEN CASE WHEN category <> '' THEN concat(category, '热门新品') ELSE '大家都在买' END
         END
         ELSE CASE reason_kind
           WHEN 'similar_to' THEN
             CASE WHEN because_title IS NOT NULL THEN concat('because you liked ', because_title) ELSE 'picked for you' END
           WHEN 'attribute' THEN
             CASE WHEN field = 'brand' AND brand IS NOT NULL THEN concat('new from ', brand)
                  ELSE concat('matches your taste: ', field, ' ', value) END
           WHEN 'trending' THEN concat('selling fast: ', users, CASE WHEN users = '1' THEN ' buyer' ELSE ' buyers' END,
                                       ' in ', days, CASE WHEN days = '1' THEN ' day' ELSE ' days' END)
           WHEN 'popular_launch' THEN concat('a promising launch: about ', per_day, ' buyers a day expected')
           WHEN 'fallback' THEN CASE WHEN category <> '' THEN concat('popular in ', category) ELSE 'popular right now' END
         END
       END AS sentence,
       model_version, run_date, generated_at
FROM parsed
