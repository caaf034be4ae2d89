"""Data lifecycle: retention and pruning of old records, encryption keys at rest
(checked at start-up, rotated online), and table sizes for the statistics."""
