-- Schema version 2: threat detection. Templates are versioned (every change is a new row); detections
-- are incidents: repeated findings of one rule on one device are grouped into one row (count, last_at).

CREATE TABLE field_templates (
    field_id    TEXT NOT NULL REFERENCES fields(id),
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    body        TEXT NOT NULL,          -- JSON Template
    PRIMARY KEY (field_id, version)
);

CREATE TABLE detections (
    id          INTEGER PRIMARY KEY,
    field_id    TEXT NOT NULL,
    device_id   TEXT,
    rule        TEXT NOT NULL,
    threat      TEXT NOT NULL,
    severity    TEXT NOT NULL,
    summary     TEXT NOT NULL,
    evidence    TEXT NOT NULL,          -- JSON
    first_at    INTEGER NOT NULL,
    last_at     INTEGER NOT NULL,
    count       INTEGER NOT NULL DEFAULT 1,
    status      TEXT NOT NULL DEFAULT 'open'
);
CREATE INDEX detections_field ON detections(field_id, id);
CREATE INDEX detections_device ON detections(device_id, id);

CREATE TABLE script_faults (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    field_id    TEXT NOT NULL,
    script      TEXT NOT NULL,
    kind        TEXT NOT NULL,          -- error | timeout | memory | overloaded
    message     TEXT NOT NULL
);
CREATE INDEX script_faults_field ON script_faults(field_id, id);
