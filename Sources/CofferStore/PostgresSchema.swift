import Foundation
import Logging
import PostgresNIO

/// The PostgreSQL schema: the SQLite vault's tables at its newest migration, plus what several
/// nodes need (the chain's head row, the count of shredded keys per KEK version, the nodes'
/// KEK versions). Numbered, append-only migrations, recorded in `coffer_migration`; each runs
/// in its own transaction, under an advisory lock so two nodes starting at once do not race.
enum PostgresSchema {
    static let migrations: [(id: String, sql: String)] = [
        (
            "pg1-vault",
            """
            CREATE TABLE kek (
                version int8 PRIMARY KEY CHECK (version > 0),
                state text NOT NULL CHECK (state IN ('pending', 'current', 'active', 'retired')),
                created_at float8 NOT NULL,
                retired_at float8
            );
            CREATE UNIQUE INDEX kek_single_current ON kek(state) WHERE state = 'current';
            CREATE UNIQUE INDEX kek_single_pending ON kek(state) WHERE state = 'pending';
            INSERT INTO kek (version, state, created_at) VALUES (1, 'current', extract(epoch FROM now()));

            -- 72 = 24-byte nonce + 16-byte MAC + 32-byte DEK; 41 is the smallest sealed field.
            CREATE TABLE subject (
                id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
                kek_version int8 NOT NULL CHECK (kek_version > 0),
                wrapped_dek bytea NOT NULL CHECK (length(wrapped_dek) = 72)
            );
            CREATE INDEX subject_kek_version ON subject(kek_version);
            CREATE TABLE field (
                subject_id text NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                name text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
                sealed bytea NOT NULL CHECK (length(sealed) > 40),
                write_seq int8 CHECK (write_seq IS NULL OR write_seq > 0),
                PRIMARY KEY (subject_id, name)
            );
            CREATE TABLE blind_index (
                kind text NOT NULL CHECK (kind IN ('email', 'phone')),
                tag bytea NOT NULL CHECK (length(tag) = 32),
                subject_id text NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                PRIMARY KEY (kind, tag, subject_id)
            );
            CREATE UNIQUE INDEX blind_index_subject ON blind_index(subject_id, kind);
            CREATE TABLE client (
                name text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
                role text NOT NULL CHECK (length(role) BETWEEN 1 AND 64),
                secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
                failed_attempts int8 NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
                locked_until float8,
                created_at float8 NOT NULL,
                mac bytea CHECK (mac IS NULL OR length(mac) = 32)
            );
            CREATE TABLE audit (
                seq int8 PRIMARY KEY CHECK (seq > 0),
                at text NOT NULL,
                client text NOT NULL,
                role text NOT NULL,
                origin text NOT NULL,
                command text NOT NULL,
                subject text,
                fields text NOT NULL,
                outcome text NOT NULL,
                mac bytea NOT NULL CHECK (length(mac) = 32),
                purpose text CHECK (purpose IS NULL OR length(purpose) BETWEEN 1 AND 32),
                ticket text CHECK (ticket IS NULL OR length(ticket) BETWEEN 1 AND 64)
            );
            -- One row, locked (FOR UPDATE) by every write transaction that may append to the
            -- chain: the nodes' batches are applied one at a time and the chain never forks.
            CREATE TABLE audit_head (id int4 PRIMARY KEY CHECK (id = 1));
            INSERT INTO audit_head VALUES (1);
            CREATE TABLE token (
                hash bytea PRIMARY KEY CHECK (length(hash) = 32),
                subject_id text NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                field text NOT NULL CHECK (field = 'card.pan'),
                format text NOT NULL CHECK (format IN ('last4', 'luhn9', 'opaque')),
                sealed bytea NOT NULL CHECK (length(sealed) > 40),
                created_seq int8 NOT NULL CHECK (created_seq > 0)
            );
            CREATE INDEX token_subject ON token(subject_id, format, created_seq);
            -- Shredded subjects whose wrapped DEK may live on in dead tuples, the WAL, archives
            -- and replicas, counted per KEK version: they are beyond reach once it is retired.
            CREATE TABLE shredded (
                kek_version int8 PRIMARY KEY REFERENCES kek(version),
                count int8 NOT NULL CHECK (count >= 0)
            );
            -- Each serving node's current KEK version, refreshed every second: a version a live
            -- node still wraps new keys under is not retired.
            CREATE TABLE node (
                id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
                current_kek int8 NOT NULL,
                seen_at float8 NOT NULL
            );

            -- No data key is ever stored under a version that is pending (its file may never
            -- come), retired (its file is gone) or unknown, whatever a node's keyring believes.
            -- FOR SHARE holds the version's row until this transaction ends, so a retirement
            -- (which locks it FOR UPDATE, then counts) waits for it and counts its key.
            CREATE FUNCTION subject_kek_live() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'UPDATE' AND NEW.kek_version = OLD.kek_version THEN
                    RETURN NEW;
                END IF;
                PERFORM 1 FROM kek WHERE version = NEW.kek_version AND state IN ('current', 'active') FOR SHARE;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'a data key may be wrapped only under a current or active KEK version';
                END IF;
                RETURN NEW;
            END
            $$;
            CREATE TRIGGER subject_kek_live BEFORE INSERT OR UPDATE OF kek_version, wrapped_dek ON subject
                FOR EACH ROW EXECUTE FUNCTION subject_kek_live();
            """
        )
    ]

    static let lockID: Int64 = 0x636f_6666_6d67

    static func migrate(_ connection: PostgresConnection, creating: Bool, logger: Logger) throws {
        func run(_ query: PostgresQuery) throws -> PostgresQueryResult {
            try PostgresTransaction.run(connection, query, logger)
        }
        _ = try run("SELECT pg_advisory_lock(\(lockID))")
        defer { _ = try? run("SELECT pg_advisory_unlock(\(lockID))") }
        let exists = try run("SELECT to_regclass('coffer_migration') IS NOT NULL").first?.decode(Bool.self) ?? false
        if !exists {
            guard creating else {
                throw StoreError("the database holds no Coffer vault (no coffer_migration table); run coffer init")
            }
            _ = try run(
                "CREATE TABLE coffer_migration (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        }
        let applied = Set(try run("SELECT id FROM coffer_migration").map { try $0.decode(String.self) })
        let known = Set(migrations.map(\.id))
        if let unknown = applied.subtracting(known).sorted().first {
            throw StoreError(
                "the database has migration \(unknown), which this coffer does not know: it was made by a newer version"
            )
        }
        for migration in migrations where !applied.contains(migration.id) {
            _ = try run("BEGIN")
            do {
                for statement in statements(migration.sql) { _ = try run(PostgresQuery(unsafeSQL: statement)) }
                _ = try run("INSERT INTO coffer_migration (id) VALUES (\(migration.id))")
                _ = try run("COMMIT")
            } catch {
                _ = try? run("ROLLBACK")
                throw StoreError("migration \(migration.id) failed: \(PostgresTransaction.describe(error))")
            }
        }
    }

    /// Splits a migration into statements (postgres-nio sends one per message): at each line
    /// ending in `;`, except inside a `$$` function body.
    static func statements(_ sql: String) -> [String] {
        var result: [String] = []
        var current: [Substring] = []
        var inBody = false
        for line in sql.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("--") || (trimmed.isEmpty && current.isEmpty) { continue }
            current.append(line)
            if line.components(separatedBy: "$$").count % 2 == 0 { inBody.toggle() }
            if !inBody && trimmed.hasSuffix(";") {
                result.append(current.joined(separator: "\n"))
                current = []
            }
        }
        let rest = current.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        if !rest.isEmpty { result.append(rest) }
        return result
    }

    static func drop(_ connection: PostgresConnection, logger: Logger) throws {
        for statement in [
            "DROP TABLE IF EXISTS token, field, blind_index, shredded, subject, client, audit, audit_head, node, kek, coffer_migration CASCADE",
            "DROP FUNCTION IF EXISTS subject_kek_live() CASCADE",
        ] {
            _ = try PostgresTransaction.run(connection, PostgresQuery(unsafeSQL: statement), logger)
        }
    }
}
