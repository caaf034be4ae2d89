"""The audit trail (DESIGN §10): who changed what, when and from where, as a hash chain.

`model` holds the event and its rules (redaction, canonical form, hashing) without I/O;
`journal` writes events inside the transaction of the change they record; `records`
reads, verifies and prunes the chain; `service` decides who may read which events.
"""
