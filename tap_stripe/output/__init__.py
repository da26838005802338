"""What the tap writes: the Singer message writers (`writer`) and BATCH files (`batch`)."""
