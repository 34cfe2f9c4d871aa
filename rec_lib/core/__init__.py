"""What every stage shares and nothing of ours is below: errors, typed config, the table and input
contracts (schema), time and run identity, process set-up. No Spark, no TensorFlow."""
