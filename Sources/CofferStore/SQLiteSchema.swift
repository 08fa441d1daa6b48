import GRDB

/// Numbered, append-only migrations. A migration that has shipped is never edited: later
/// changes are new entries.
enum SQLiteSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-subjects-fields-index-clients") { db in
            // 72 = 24-byte nonce + 16-byte MAC + 32-byte DEK; 41 is the smallest sealed field.
            try db.execute(
                sql: """
                    CREATE TABLE subject (
                        id TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 128),
                        kek_version INTEGER NOT NULL CHECK (kek_version > 0),
                        wrapped_dek BLOB NOT NULL CHECK (length(wrapped_dek) = 72)
                    ) WITHOUT ROWID;
                    CREATE INDEX subject_kek_version ON subject(kek_version);
                    CREATE TABLE field (
                        subject_id TEXT NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
                        sealed BLOB NOT NULL CHECK (length(sealed) > 40),
                        PRIMARY KEY (subject_id, name)
                    );
                    CREATE TABLE blind_index (
                        kind TEXT NOT NULL CHECK (kind IN ('email', 'phone')),
                        tag BLOB NOT NULL CHECK (length(tag) = 32),
                        subject_id TEXT NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        PRIMARY KEY (kind, tag, subject_id)
                    ) WITHOUT ROWID;
                    CREATE UNIQUE INDEX blind_index_subject ON blind_index(subject_id, kind);
                    CREATE TABLE client (
                        name TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
                        role TEXT NOT NULL CHECK (length(role) BETWEEN 1 AND 64),
                        secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),
                        failed_attempts INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
                        locked_until REAL,
                        created_at REAL NOT NULL
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v2-audit-and-kek-versions") { db in
            try db.execute(
                sql: """
                    CREATE TABLE audit (
                        seq INTEGER PRIMARY KEY NOT NULL CHECK (seq > 0),
                        at TEXT NOT NULL,
                        client TEXT NOT NULL,
                        role TEXT NOT NULL,
                        origin TEXT NOT NULL,
                        command TEXT NOT NULL,
                        subject TEXT,
                        fields TEXT NOT NULL,
                        outcome TEXT NOT NULL,
                        mac BLOB NOT NULL CHECK (length(mac) = 32)
                    );
                    CREATE TABLE kek (
                        version INTEGER PRIMARY KEY NOT NULL CHECK (version > 0),
                        state TEXT NOT NULL CHECK (state IN ('current', 'active', 'retired')),
                        created_at REAL NOT NULL,
                        retired_at REAL
                    );
                    CREATE UNIQUE INDEX kek_single_current ON kek(state) WHERE state = 'current';
                    INSERT INTO kek (version, state, created_at)
                        VALUES (COALESCE((SELECT MAX(kek_version) FROM subject), 1), 'current', CAST(strftime('%s', 'now') AS REAL));
                    """)
        }
        // A rotation is recorded before its key file is written (`pending`), so a KEK file the
        // database never heard of can be refused instead of adopted. SQLite cannot widen a CHECK
        // in place: the table is rebuilt with the same rows. And no data key is ever stored under
        // a version that is pending (its file may never come), retired (its file is gone: the
        // data would be lost for good) or unknown, whatever a process's keyring believes.
        migrator.registerMigration("v3-pending-kek-state") { db in
            try db.execute(
                sql: """
                    CREATE TABLE kek_v3 (
                        version INTEGER PRIMARY KEY NOT NULL CHECK (version > 0),
                        state TEXT NOT NULL CHECK (state IN ('pending', 'current', 'active', 'retired')),
                        created_at REAL NOT NULL,
                        retired_at REAL
                    );
                    INSERT INTO kek_v3 (version, state, created_at, retired_at)
                        SELECT version, state, created_at, retired_at FROM kek;
                    DROP TABLE kek;
                    ALTER TABLE kek_v3 RENAME TO kek;
                    CREATE UNIQUE INDEX kek_single_current ON kek(state) WHERE state = 'current';
                    CREATE UNIQUE INDEX kek_single_pending ON kek(state) WHERE state = 'pending';
                    CREATE TRIGGER subject_kek_live_on_insert BEFORE INSERT ON subject
                    WHEN NOT EXISTS (
                        SELECT 1 FROM kek WHERE version = NEW.kek_version AND state IN ('current', 'active'))
                    BEGIN
                        SELECT RAISE(ABORT, 'a data key may be wrapped only under a current or active KEK version');
                    END;
                    CREATE TRIGGER subject_kek_live_on_update BEFORE UPDATE OF kek_version ON subject
                    WHEN NEW.kek_version <> OLD.kek_version AND NOT EXISTS (
                        SELECT 1 FROM kek WHERE version = NEW.kek_version AND state IN ('current', 'active'))
                    BEGIN
                        SELECT RAISE(ABORT, 'a data key may be wrapped only under a current or active KEK version');
                    END;
                    """)
        }
        migrator.registerMigration(clientMACMigration) { db in
            // A MAC (computed by the vault core, under a key from the key directory) over each
            // client row's name, role, secret hash and creation time. Rows that existed before
            // this migration get theirs when the vault opens right after it; from then on a row
            // without a valid MAC is refused.
            try db.execute(
                sql: "ALTER TABLE client ADD COLUMN mac BLOB CHECK (mac IS NULL OR length(mac) = 32)")
        }
        migrator.registerMigration("v5-field-write-seq") { db in
            // The sequence number of the audit entry of the write that sealed each field; the
            // field key is derived from it, so a ciphertext cannot be moved to another write,
            // and AUDIT.VERIFY checks it against the trail. NULL for fields sealed before.
            try db.execute(
                sql: "ALTER TABLE field ADD COLUMN write_seq INTEGER CHECK (write_seq IS NULL OR write_seq > 0)")
        }
        migrator.registerMigration("v6-card-tokens") { db in
            // A token is stored only as a keyed hash (BLAKE2b under a key from the key directory),
            // the lookup key of DETOKENIZE; `sealed` is the token itself encrypted, so that REUSE
            // can hand it out again. A token is unique across the vault (the hash is the primary
            // key) and dies with its subject (SHRED) or its card (a new or deleted card.pan).
            try db.execute(
                sql: """
                    CREATE TABLE token (
                        hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),
                        subject_id TEXT NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        field TEXT NOT NULL CHECK (field = 'card.pan'),
                        format TEXT NOT NULL CHECK (format IN ('last4', 'luhn9', 'opaque')),
                        sealed BLOB NOT NULL CHECK (length(sealed) > 40),
                        created_seq INTEGER NOT NULL CHECK (created_seq > 0)
                    ) WITHOUT ROWID;
                    CREATE INDEX token_subject ON token(subject_id, format, created_seq);
                    """)
        }
        migrator.registerMigration("v7-audit-purpose") { db in
            // Why each command was made (purpose limitation), and the ticket of purpose `other`.
            // NULL in entries written before: their MAC input stays the v1 form.
            try db.execute(
                sql: """
                    ALTER TABLE audit ADD COLUMN purpose TEXT CHECK (purpose IS NULL OR length(purpose) BETWEEN 1 AND 32);
                    ALTER TABLE audit ADD COLUMN ticket TEXT CHECK (ticket IS NULL OR length(ticket) BETWEEN 1 AND 64);
                    """)
        }
        migrator.registerMigration("v8-field-without-rowid") { db in
            // Every GET and PUT finds fields by (subject_id, name). As a rowid table that was two
            // B-tree searches (the primary-key index, then the row); clustered on its key, one.
            // The old table's pages are zeroed as it is dropped (`secure_delete`).
            try db.execute(
                sql: """
                    CREATE TABLE field_v8 (
                        subject_id TEXT NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
                        sealed BLOB NOT NULL CHECK (length(sealed) > 40),
                        write_seq INTEGER CHECK (write_seq IS NULL OR write_seq > 0),
                        PRIMARY KEY (subject_id, name)
                    ) WITHOUT ROWID;
                    INSERT INTO field_v8 (subject_id, name, sealed, write_seq)
                        SELECT subject_id, name, sealed, write_seq FROM field ORDER BY subject_id, name;
                    DROP TABLE field;
                    ALTER TABLE field_v8 RENAME TO field;
                    """)
        }
        migrator.registerMigration("v9-pending-wipe") { db in
            // Shreds whose wipe of the WAL waits for a reader, kept across a restart so that the
            // next process finishes the wipe and audits it. The subject ids are ones the SHRED
            // entries of the audit trail already name.
            try db.execute(
                sql: """
                    CREATE TABLE pending_wipe (
                        subject_id TEXT PRIMARY KEY CHECK (length(subject_id) BETWEEN 1 AND 128)
                    ) WITHOUT ROWID;
                    """)
        }
        return migrator
    }

    static let clientMACMigration = "v4-client-record-mac"
}
