import Foundation
import SwitchboardCore
import SwitchboardTestSupport
import Testing

@Suite("Operating the server", .serialized)
struct OperationsTests {
    @Test("A database that cannot be opened or reached at start: one clear line, exit 3")
    func unreachableDatabaseAtStart() async throws {
        let missing = try await runSwitchboard(["serve", "--port", "0", "--database-url", "/nonexistent-dir/switchboard.sqlite"])
        #expect(missing.status == 3)
        #expect(missing.output.contains("error: cannot open the SQLite database /nonexistent-dir/switchboard.sqlite: the directory /nonexistent-dir does not exist"))
        let refused = try await runSwitchboard(["migrate", "--database-url", "postgres://nobody:secret@127.0.0.1:1/none"], timeout: 60)
        #expect(refused.status == 3)
        // In the operator's words, not the network library's (it printed `SingleConnectionFailure(target: …)` before).
        #expect(refused.output.contains("error: cannot use the database postgres://127.0.0.1:1/none: cannot connect: nothing listens on 127.0.0.1:1 (connection refused)\n"), "\(refused.output)")
        #expect(!refused.output.contains("secret"))
    }

    @Test("Something other than PostgreSQL at the database's address: said so in one line, exit 3")
    func notPostgresAtTheAddress() async throws {
        // One takes the connection and says nothing; the other closes it at once (it printed `PSQLError(code:
        // serverClosedConnection)` before).
        let silent = try ListeningSocket()
        let closing = try ListeningSocket()
        closing.closeEveryConnection()
        defer {
            silent.close()
            closing.close()
        }
        async let mute = runSwitchboard(["migrate", "--database-url", "postgres://nobody:secret@127.0.0.1:\(silent.port)/none"], timeout: 60)
        async let closed = runSwitchboard(["migrate", "--database-url", "postgres://nobody:secret@127.0.0.1:\(closing.port)/none"], timeout: 60)
        let (m, c) = try await (mute, closed)
        #expect(m.status == 3)
        #expect(
            m.output.contains("cannot connect: 127.0.0.1:\(silent.port) did not answer within 5 s (nothing reachable there, or not PostgreSQL)\n"),
            "\(m.output)")
        #expect(c.status == 3)
        #expect(
            c.output.contains(
                "cannot connect: 127.0.0.1:\(closing.port) closed the connection without answering (not a PostgreSQL server, or one that cannot be reached)\n"),
            "\(c.output)")
        #expect(!m.output.contains("secret") && !c.output.contains("secret"))
    }

    @Test(
        "A PostgreSQL server that answers but refuses: its reason is named (no such database, wrong password), exit 3",
        .enabled(if: TestPostgres.isAvailable, Comment(rawValue: TestPostgres.skipReason)))
    func refusingDatabaseIsNamed() async throws {
        let admin = try #require(TestPostgres.adminURL.flatMap { URLComponents(string: $0) })
        var missing = admin
        missing.path = "/switchboard_no_such_database"
        let noDatabase = try await runSwitchboard(["migrate", "--database-url", try #require(missing.string)], timeout: 60)
        #expect(noDatabase.status == 3)
        #expect(noDatabase.output.contains("cannot connect: database \"switchboard_no_such_database\" does not exist"), "\(noDatabase.output)")
        var wrong = admin
        wrong.password = "not-the-password"
        let badPassword = try await runSwitchboard(["migrate", "--database-url", try #require(wrong.string)], timeout: 60)
        #expect(badPassword.status == 3)
        #expect(badPassword.output.contains("authentication failed"), "\(badPassword.output)")
        #expect(!badPassword.output.contains("not-the-password"))
    }

    @Test("Bad configuration names every bad key and its variable, exit 1")
    func badConfiguration() async throws {
        let r = try await runSwitchboard(
            ["serve"], environment: ["SWITCHBOARD_HTTP_PORT": "eighty", "SWITCHBOARD_PIPELINE_MAX_ATTEMPTS": "0", "SWITCHBOARD_SECRET_KEY": "short"])
        #expect(r.status == 1)
        #expect(r.output.contains("3 problems"))
        #expect(r.output.contains("http.port (SWITCHBOARD_HTTP_PORT) is \"eighty\""))
        #expect(r.output.contains("pipeline.maxAttempts (SWITCHBOARD_PIPELINE_MAX_ATTEMPTS)"))
        #expect(r.output.contains("secret.key (SWITCHBOARD_SECRET_KEY) is (hidden)"))
        let missingFile = try await runSwitchboard(["serve", "--config", "/nonexistent/config.json"])
        #expect(missingFile.status == 2, "a file that cannot be read")
        #expect(missingFile.output.contains("config file /nonexistent/config.json does not exist"))
    }

    @Test("A config file is read, and flags win over it")
    func configFile() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let config = dir.file("config.json")
        try #"{"database": {"url": "\#(dir.file("from-file.sqlite"))"}, "log": {"level": "error"}}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let serve = try await ServeProcess.start(arguments: ["--config", config], outputFile: dir.file("serve.log"))
        #expect(serve.log.contains("from-file.sqlite"))
        #expect(serve.terminate() == 0)
    }

    @Test("A busy port: one clear line, exit 4; SIGTERM stops cleanly with exit 0")
    func busyPortAndGracefulStop() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let first = try await ServeProcess.start(arguments: ["--database-url", dir.file("a.sqlite")], outputFile: dir.file("a.log"))
        let second = try await runSwitchboard(["serve", "--port", String(first.port), "--database-url", dir.file("b.sqlite")])
        #expect(second.status == 4)
        #expect(second.output.contains("error: cannot listen on 127.0.0.1:\(first.port): the address is already in use"))
        #expect(first.terminate() == 0)
    }

    @Test(
        "PostgreSQL lost while running: not ready, deliveries refused (not lost), recovery when it returns",
        .enabled(if: TestPostgres.isAvailable, Comment(rawValue: TestPostgres.skipReason)))
    func databaseLostWhileRunning() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let recorder = try await RecordingServer.start()
        let (url, name) = try await TestPostgres.createDatabase()
        let env = ["SWITCHBOARD_DATABASE_URL": url, "SWITCHBOARD_SINK_URL": recorder.url, "SWITCHBOARD_LOG_LEVEL": "warning", "SWITCHBOARD_PIPELINE_LEASE_SECONDS": "3"]
        let rules = dir.file("rules.yaml")
        try FaultScenarios.rules.write(toFile: rules, atomically: true, encoding: .utf8)
        #expect(try await runSwitchboard(["rules", "import", rules], environment: env).status == 0)
        let serve = try await ServeProcess.start(arguments: [], environment: env, outputFile: dir.file("serve.log"))
        #expect(await HTTP.get(serve.baseURL + "/readyz")?.status == 200)
        #expect(await HTTP.post(serve.baseURL + "/webhooks/salesforce", FaultScenarios.caseBody(1))?.status == 202)

        try await TestPostgres.setReachable(name, false)
        var readiness = 0
        for _ in 0..<50 {
            readiness = await HTTP.get(serve.baseURL + "/readyz")?.status ?? 0
            if readiness == 503 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(readiness == 503)
        // While the database is away, a delivery is refused with 503 (the sender retries), never acknowledged and dropped,
        // and in good time: also once the server's cached connections are too old to use without reading them again.
        try await Task.sleep(for: .milliseconds(5_500))
        let asked = ContinuousClock.now
        let during = await HTTP.post(serve.baseURL + "/webhooks/salesforce", FaultScenarios.caseBody(2), timeout: .seconds(30))
        #expect(during?.status == 503)
        #expect(ContinuousClock.now - asked < .seconds(15), "the refusal took \(ContinuousClock.now - asked)")
        #expect(await HTTP.get(serve.baseURL + "/healthz")?.status == 200)

        try await TestPostgres.setReachable(name, true)
        var accepted = false
        for _ in 0..<100 {
            if let r = await HTTP.post(serve.baseURL + "/webhooks/salesforce", FaultScenarios.caseBody(2)), r.status == 202 {
                accepted = true
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(accepted)
        #expect(await HTTP.get(serve.baseURL + "/readyz")?.status == 200)
        var creates = 0
        // The pool reconnects with backoff (up to a minute after repeated refusals); under the full suite's load
        // that can take a while.
        for _ in 0..<1200 {
            creates = recorder.snapshot.effects.filter { $0.body["action"] == "createIncident" }.count
            if creates == 2 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let status = await HTTP.get(serve.baseURL + "/status")?.body ?? ""
        #expect(creates == 2, "status: \(status)\nlog: \(serve.log.suffix(3000))")
        serve.terminate()
        await recorder.stop()
        await TestPostgres.dropDatabase(name)
    }
}
