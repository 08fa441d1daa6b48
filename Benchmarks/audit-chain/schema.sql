-- The audit trail of a PostgreSQL Coffer, for Benchmarks/audit-chain/run: the columns of the
-- SQLite vault's `audit` table (Sources/CofferStore/SQLiteSchema.swift), plus `chain`, the chain a
-- row belongs to (design A: always 1; design B: the node that wrote it), and a head row per chain.
DROP TABLE IF EXISTS audit, audit_head;

CREATE TABLE audit (
    chain   int4        NOT NULL,
    seq     int8        NOT NULL CHECK (seq > 0),
    at      timestamptz NOT NULL DEFAULT now(),
    client  text        NOT NULL,
    role    text        NOT NULL,
    origin  text        NOT NULL,
    command text        NOT NULL,
    subject text,
    fields  text        NOT NULL,   -- field names only, never values: no personal data
    outcome text        NOT NULL,
    mac     bytea       NOT NULL CHECK (length(mac) = 32),
    PRIMARY KEY (chain, seq)        -- two appends with one seq cannot both commit: no fork
);

-- One row per chain: its last seq and mac. Design A uses id 1 only; design B one per node.
CREATE TABLE audit_head (
    id        int4        PRIMARY KEY,
    seq       int8        NOT NULL CHECK (seq >= 0),
    mac       bytea       NOT NULL CHECK (length(mac) = 32),
    linked_at timestamptz NOT NULL DEFAULT now()    -- design B: when this chain last cross-linked
);

INSERT INTO audit_head (id, seq, mac)
SELECT n, 0, sha256(convert_to('genesis ' || n, 'UTF8')) FROM generate_series(1, 3) AS n;
