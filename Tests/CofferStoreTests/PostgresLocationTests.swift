import Testing

@testable import CofferStore

/// libpq URI forms, and TLS required and verified whenever the database is not on a Unix socket.
@Suite struct PostgresLocationTests {
    @Test func unixSocketHostAsAParameter() throws {
        let location = try PostgresLocation(uri: "postgresql://coffer@/vault?host=/run/postgresql&port=5433")
        #expect(location.host == "/run/postgresql")
        #expect(location.port == 5433)
        #expect(location.user == "coffer")
        #expect(location.database == "vault")
        #expect(location.isUnixSocket)
        #expect(location.sslMode == .disable)
        let configuration = try location.clientConfiguration()
        #expect(configuration.unixSocketPath == "/run/postgresql/.s.PGSQL.5433")
    }

    @Test func noHostMeansTheDefaultSocketDirectory() throws {
        let location = try PostgresLocation(uri: "postgres://coffer@/vault")
        #expect(location.host == "/run/postgresql" && location.port == 5432)
    }

    @Test func tcpHostsRequireVerifiedTLSByDefault() throws {
        let location = try PostgresLocation(uri: "postgresql://coffer@db.internal:6432/vault")
        #expect(location.host == "db.internal" && location.port == 6432)
        #expect(location.sslMode == .verifyFull)
        let configuration = try location.clientConfiguration()
        #expect(configuration.host == "db.internal" && configuration.port == 6432)
        #expect(location.verifiesChain && location.verifiesHostname)
        // As libpq: require checks nothing, unless a root certificate file makes it verify-ca.
        let require = try PostgresLocation(uri: "postgresql://coffer@db/vault?sslmode=require")
        #expect(!require.verifiesChain)
        let requireWithRoot = try PostgresLocation(
            uri: "postgresql://coffer@db/vault?sslmode=require&sslrootcert=/ca.pem")
        #expect(requireWithRoot.verifiesChain && !requireWithRoot.verifiesHostname)
        let verifyCA = try PostgresLocation(uri: "postgresql://coffer@db/vault?sslmode=verify-ca")
        #expect(verifyCA.verifiesChain && !verifyCA.verifiesHostname)
        // Only an explicit sslmode lowers it.
        #expect(try PostgresLocation(uri: "postgresql://coffer@db/vault?sslmode=require").sslMode == .require)
        #expect(try PostgresLocation(uri: "postgresql://coffer@db/vault?sslmode=disable").sslMode == .disable)
    }

    @Test func passwordsComeFromTheURIOrTheEnvironmentAndNeverShow() throws {
        let inURI = try PostgresLocation(uri: "postgresql://coffer:s3cret@db/vault")
        #expect(inURI.password == "s3cret")
        #expect(!inURI.description.contains("s3cret"))
        let fromEnvironment = try PostgresLocation(uri: "postgresql://coffer@db/vault", password: "fallback")
        #expect(fromEnvironment.password == "fallback")
        #expect(try PostgresLocation(uri: "postgresql://coffer:mine@db/vault", password: "fallback").password == "mine")
    }

    @Test func keywordValuePairsAreTheOtherLibpqForm() throws {
        let location = try PostgresLocation(
            uri: "host=/var/run/postgresql port=5433 dbname=coffer user=coffer application_name='a b'")
        #expect(location.host == "/var/run/postgresql" && location.port == 5433)
        #expect(location.database == "coffer" && location.user == "coffer")
        let tcp = try PostgresLocation(uri: #"host=db.internal dbname=coffer user=coffer password='it\'s a secret'"#)
        #expect(tcp.sslMode == .verifyFull)
        #expect(tcp.password == "it's a secret")
        #expect(throws: (any Error).self) { try PostgresLocation(uri: "host=db dbname='unterminated user=x") }
        #expect(throws: (any Error).self) { try PostgresLocation(uri: "host=db dbname=x user=x sslcert=/k") }
    }

    @Test(arguments: [
        ("mysql://coffer@db/vault", "not a PostgreSQL connection URI"),
        ("postgresql://@db/vault", "names no user"),
        ("postgresql://coffer@db", "names no database"),
        ("postgresql://coffer@db/vault?port=99999", "is not a port number"),
        ("postgresql://coffer@db/vault?sslmode=maybe", "sslmode maybe is not one of"),
        ("postgresql://coffer@db/vault?options=-c%20x", "parameter options is not supported"),
        ("postgresql://coffer@/vault?host=/run/postgresql&sslmode=require", "a Unix-socket host does not use"),
    ])
    func malformedURIsAreRefusedByName(uri: String, message: String) {
        #expect {
            try PostgresLocation(uri: uri)
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test func migrationsSplitIntoStatementsButKeepFunctionBodiesWhole() {
        let statements = PostgresSchema.statements(
            """
            -- a comment
            CREATE TABLE a (x int);
            CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM 1;
                RETURN NEW;
            END
            $$;
            INSERT INTO a VALUES (1);
            """)
        #expect(statements.count == 3)
        #expect(statements[1].hasPrefix("CREATE FUNCTION") && statements[1].hasSuffix("$$;"))
        #expect(statements[1].contains("PERFORM 1;"))
        // The real schema splits into statements PostgreSQL accepts one at a time; the whole
        // schema is exercised by every PostgreSQL test that makes a vault.
        #expect(PostgresSchema.migrations.allSatisfy { !PostgresSchema.statements($0.sql).isEmpty })
    }
}
