"""Where the jobs run: the Spark session, Delta storage (io), shared column expressions, MLflow
tracking, the SQL views and the command-line runner. Knows only core."""
