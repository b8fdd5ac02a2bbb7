-- Sekisho embedded store, schema version 1. Times are Unix milliseconds (UTC).

CREATE TABLE fields (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    auth_id     TEXT NOT NULL UNIQUE,
    auth_mode   TEXT NOT NULL,
    limits      TEXT NOT NULL,          -- JSON FieldLimits
    cloud       TEXT,                   -- JSON CloudDestination (holds secrets; the file is encrypted)
    created_at  INTEGER NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    field_id     TEXT NOT NULL REFERENCES fields(id),
    unique_id    TEXT NOT NULL,
    name         TEXT,
    sim          TEXT,                  -- JSON Sim
    critical     INTEGER NOT NULL DEFAULT 0,
    status       TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,         -- Argon2id PHC string
    cert_sha256  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX devices_live_unique ON devices(field_id, unique_id) WHERE status != 'deleted';
CREATE UNIQUE INDEX devices_cert ON devices(cert_sha256) WHERE cert_sha256 IS NOT NULL AND status != 'deleted';

CREATE TABLE tokens (
    hash        BLOB PRIMARY KEY,       -- SHA-256 of the bearer token; the token itself is never stored
    device_id   TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tokens_device ON tokens(device_id);

CREATE TABLE auth_attempts (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    field_id    TEXT,
    device_id   TEXT,
    unique_id   TEXT,
    source_ip   TEXT NOT NULL,
    method      TEXT NOT NULL,          -- secret | certificate
    outcome     TEXT NOT NULL,          -- success | failure | throttled
    reason      TEXT
);
CREATE INDEX auth_attempts_at ON auth_attempts(at);
CREATE INDEX auth_attempts_device ON auth_attempts(device_id, at);

-- Every received message: metadata always, the body while it is to be forwarded or kept as history.
CREATE TABLE messages (
    seq             INTEGER PRIMARY KEY,    -- arrival order; forwarding follows it
    id              TEXT NOT NULL UNIQUE,   -- UUIDv7, the idempotency key towards the cloud
    at              INTEGER NOT NULL,
    field_id        TEXT,
    device_id       TEXT,
    source_ip       TEXT NOT NULL,
    size            INTEGER NOT NULL,
    outcome         TEXT NOT NULL,          -- accepted | rejected
    reason          TEXT,
    device_ts       INTEGER,
    device_seq      INTEGER,
    buffered        INTEGER NOT NULL DEFAULT 0,
    forward_status  TEXT NOT NULL,          -- pending | forwarded | dead | none
    forward_attempts INTEGER NOT NULL DEFAULT 0,
    forwarded_at    INTEGER,
    body            BLOB
);
CREATE INDEX messages_pending ON messages(field_id, seq) WHERE forward_status = 'pending';
CREATE INDEX messages_device ON messages(device_id, seq);
CREATE INDEX messages_at ON messages(at);

CREATE TABLE dead_letters (
    message_seq INTEGER PRIMARY KEY REFERENCES messages(seq),
    at          INTEGER NOT NULL,
    field_id    TEXT NOT NULL,
    reason      TEXT NOT NULL
);

-- Connection-level events: plaintext on a TLS port, failed handshakes, refused connections.
CREATE TABLE security_events (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    listener    TEXT NOT NULL,
    source_ip   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT
);
CREATE INDEX security_events_at ON security_events(at);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE TABLE user_fields (
    user_id   TEXT NOT NULL REFERENCES users(id),
    field_id  TEXT NOT NULL REFERENCES fields(id),
    PRIMARY KEY (user_id, field_id)
);
CREATE TABLE sessions (
    hash        BLOB PRIMARY KEY,
    user_id     TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- What people did through the admin API.
CREATE TABLE admin_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT,
    detail  TEXT
);
