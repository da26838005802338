"""What the tap writes: the record path and its SCHEMA messages (`emitter`), the Singer
message writers (`writer`), BATCH files (`batch`) and the SDK's METRIC lines (`metrics`)."""
