// The physical limit on this machine for Coffer's read path, measured without Coffer: an
// SQLite point read of a sealed value followed by crypto_secretbox_open_easy, one thread.
// Also the raw rate of the rewrap work: secretbox of 32 bytes plus a batched UPDATE.
//
// Usage: ceiling DBFILE ROWS READS
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check(int rc, sqlite3 *db, const char *what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: ceiling DBFILE ROWS READS\n"); return 2; }
    const char *path = argv[1];
    int rows = atoi(argv[2]), reads = atoi(argv[3]);
    if (sodium_init() < 0) return 1;
    unsigned char key[32];
    randombytes_buf(key, sizeof key);
    remove(path);
    sqlite3 *db;
    check(sqlite3_open(path, &db), db, "open");
    check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;"
                           "CREATE TABLE t(id TEXT PRIMARY KEY, sealed BLOB NOT NULL) WITHOUT ROWID;", 0, 0, 0), db, "schema");
    sqlite3_stmt *ins;
    check(sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?, ?)", -1, &ins, 0), db, "prepare insert");
    unsigned char plain[16] = "4111111111111111";
    unsigned char box[crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + 16];
    char id[32];
    check(sqlite3_exec(db, "BEGIN", 0, 0, 0), db, "begin");
    for (int i = 0; i < rows; i++) {
        snprintf(id, sizeof id, "cust:%012d", i);
        randombytes_buf(box, crypto_secretbox_NONCEBYTES);
        crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, plain, 16, box, key);
        sqlite3_bind_text(ins, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(ins, 2, box, sizeof box, SQLITE_TRANSIENT);
        check(sqlite3_step(ins), db, "insert");
        sqlite3_reset(ins);
    }
    check(sqlite3_exec(db, "COMMIT", 0, 0, 0), db, "commit");

    // Point read + open.
    sqlite3_stmt *sel;
    check(sqlite3_prepare_v2(db, "SELECT sealed FROM t WHERE id = ?", -1, &sel, 0), db, "prepare select");
    unsigned char out[16];
    int ok = 0;
    double start = now();
    for (int i = 0; i < reads; i++) {
        snprintf(id, sizeof id, "cust:%012d", (int)randombytes_uniform(rows));
        sqlite3_bind_text(sel, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(sel) == SQLITE_ROW) {
            const unsigned char *b = sqlite3_column_blob(sel, 0);
            if (crypto_secretbox_open_easy(out, b + crypto_secretbox_NONCEBYTES, sizeof box - crypto_secretbox_NONCEBYTES, b, key) == 0) ok++;
        }
        sqlite3_reset(sel);
    }
    double readSeconds = now() - start;

    // Rewrap: open and re-seal a 32-byte key per row, UPDATE in batches of 1000 per transaction.
    unsigned char dek[32], wrapped[crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + 32];
    randombytes_buf(dek, sizeof dek);
    sqlite3_stmt *upd;
    check(sqlite3_prepare_v2(db, "UPDATE t SET sealed = ? WHERE id = ?", -1, &upd, 0), db, "prepare update");
    start = now();
    for (int i = 0; i < rows; i++) {
        if (i % 1000 == 0) check(sqlite3_exec(db, "BEGIN", 0, 0, 0), db, "begin");
        snprintf(id, sizeof id, "cust:%012d", i);
        randombytes_buf(wrapped, crypto_secretbox_NONCEBYTES);
        crypto_secretbox_easy(wrapped + crypto_secretbox_NONCEBYTES, dek, 32, wrapped, key);
        sqlite3_bind_blob(upd, 1, wrapped, sizeof wrapped, SQLITE_STATIC);
        sqlite3_bind_text(upd, 2, id, -1, SQLITE_STATIC);
        check(sqlite3_step(upd), db, "update");
        sqlite3_reset(upd);
        if (i % 1000 == 999 || i == rows - 1) check(sqlite3_exec(db, "COMMIT", 0, 0, 0), db, "commit");
    }
    double rewrapSeconds = now() - start;
    printf("{\"reads\": %d, \"read_ok\": %d, \"reads_per_s\": %.0f, \"rewraps_per_s\": %.0f}\n", reads, ok,
           reads / readSeconds, rows / rewrapSeconds);
    sqlite3_close(db);
    return ok == reads ? 0 : 1;
}
