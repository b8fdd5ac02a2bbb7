-- Schema version 3: the carrier. RADIUS accounting records as received (history), the live SIM session
-- table (one row per IMSI: its current address and byte counts), and every call to the carrier's SIM API.

CREATE TABLE accounting (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    client_ip       TEXT NOT NULL,          -- the packet gateway (RADIUS client) that sent it
    packet_key      BLOB NOT NULL UNIQUE,   -- SHA-256 of client address and packet: a retransmission is stored once
    status          TEXT NOT NULL,          -- start | interim | stop | accounting_on | accounting_off | other
    imsi            TEXT,
    msisdn          TEXT,
    framed_ip       TEXT,
    session_id      TEXT,
    input_octets    INTEGER NOT NULL,       -- uplink (what the SIM sent)
    output_octets   INTEGER NOT NULL,       -- downlink
    session_time    INTEGER
);
CREATE INDEX accounting_imsi ON accounting(imsi, id);
CREATE INDEX accounting_at ON accounting(at);

CREATE TABLE sim_sessions (
    imsi            TEXT PRIMARY KEY,
    session_id      TEXT,
    client_ip       TEXT NOT NULL,
    framed_ip       TEXT,
    msisdn          TEXT,
    online          INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    input_octets    INTEGER NOT NULL,
    output_octets   INTEGER NOT NULL
);

CREATE TABLE sim_actions (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    field_id        TEXT,
    device_id       TEXT,
    sim             TEXT NOT NULL,          -- IMSI or ICCID as sent to the carrier
    action          TEXT NOT NULL,          -- suspend | resume | status | usage
    actor           TEXT NOT NULL,          -- user:<name> | response:<decision> | system
    outcome         TEXT NOT NULL,          -- ok | failed
    error           TEXT,                   -- CarrierError code
    detail          TEXT,
    attempts        INTEGER NOT NULL,
    elapsed_ms      INTEGER NOT NULL
);
CREATE INDEX sim_actions_device ON sim_actions(device_id, id);
