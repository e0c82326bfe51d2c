"""Released weights: where a variant's published weights live, how they are fetched, read
and mapped onto the suite's networks."""
