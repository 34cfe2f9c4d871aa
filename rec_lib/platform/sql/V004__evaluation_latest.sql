-- The newest evaluation run only, as evaluation_summary shows it.
CREATE OR REPLACE VIEW {{view}} AS
SELECT *
FROM {{view:evaluation_summary}}
WHERE evaluated_at = (SELECT max(evaluated_at) FROM {{view:evaluation_summary}})
