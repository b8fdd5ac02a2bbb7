-- Where each consumer of the message log stands: the offset of the first record it has not taken.
CREATE TABLE log_cursors (
    name TEXT PRIMARY KEY,
    log_offset INTEGER NOT NULL
);
