import CryptoExtras
import Foundation
import SwitchboardCore
import SwitchboardSimulators
import SwitchboardTestSupport
import Testing

@Suite("switchboard salesforce connect, status, disconnect; simulate salesforce", .serialized)
struct SalesforceCommandTests {
    @Test("Connect checks the OAuth settings against the org, stores secrets encrypted, reports the budget; disconnect removes the org")
    func lifecycle() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        var options = SalesforceSimulator.Options()
        options.certificatePublicKeyPEM = key.publicKey.pemRepresentation
        let simulator = SalesforceSimulator(options: options)
        try await simulator.start()
        defer { Task { await simulator.stop() } }
        let keyFile = dir.file("switchboard.key")
        try key.pemRepresentation.write(toFile: keyFile, atomically: true, encoding: .utf8)
        let secretKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        let env = ["SWITCHBOARD_DATABASE_URL": dir.file("db.sqlite"), "SWITCHBOARD_SECRET_KEY": secretKey]
        let jwt = [
            "salesforce", "connect", "--login-url", simulator.baseURL, "--auth", "jwt", "--username", options.username,
            "--private-key-file", keyFile, "--trigger-secret", "org-trigger-secret", "--capture", "cdc", "--objects", "Case,Opportunity",
        ]

        let noKey = try await runSwitchboard(jwt + ["--consumer-key", options.consumerKey], environment: ["SWITCHBOARD_DATABASE_URL": dir.file("db.sqlite")])
        #expect(noKey.status == 1)
        #expect(noKey.output.contains("SWITCHBOARD_SECRET_KEY"))
        let wrongApp = try await runSwitchboard(jwt + ["--consumer-key", "someone-else"], environment: env)
        #expect(wrongApp.status == 1)
        #expect(wrongApp.output.contains("Salesforce refused the token request"), "\(wrongApp.output)")
        let unknownObject = try await runSwitchboard(
            jwt.map { $0 == "Case,Opportunity" ? "Case,Nonexistent__c" : $0 } + ["--consumer-key", options.consumerKey], environment: env)
        #expect(unknownObject.status == 1)
        #expect(unknownObject.output.contains("cannot describe Nonexistent__c"), "\(unknownObject.output)")
        let usage = try await runSwitchboard(["salesforce", "connect", "--capture", "polling", "--org-id", "00D000000000002EAA"], environment: env)
        #expect(usage.status == 64, "polling reads the API: --auth is required")

        let connect = try await runSwitchboard(jwt + ["--consumer-key", options.consumerKey], environment: env)
        #expect(connect.status == 0, "\(connect.output)")
        #expect(connect.output.contains("Connected Salesforce org \(options.orgId)"))
        #expect(connect.output.contains("API budget:"))
        #expect(connect.output.contains("/data/CaseChangeEvent, /data/OpportunityChangeEvent"))
        let raw = try String(contentsOfFile: dir.file("db.sqlite"), encoding: .isoLatin1)
        #expect(!raw.contains("org-trigger-secret"))
        #expect(!raw.contains("PRIVATE KEY"))

        // An org that only posts (no API access).
        let postsOnly = try await runSwitchboard(
            ["salesforce", "connect", "--org-id", "00D000000000002EAA", "--trigger-secret", "second-org-secret"], environment: env)
        #expect(postsOnly.status == 0, "\(postsOnly.output)")

        let status = try await runSwitchboard(["salesforce", "status", "--json"], environment: env)
        #expect(status.status == 0, "\(status.output)")
        let orgs = try #require(try JSONParser.parseValue(status.output)["orgs"]?.arrayValue)
        #expect(orgs.count == 2)
        let first = try #require(orgs.first { $0["orgId"]?.stringValue == options.orgId })
        #expect(first["authorised"] == .bool(true))
        #expect(first["capture"]?.stringValue == "cdc")
        #expect(first["apiBudget"]?["max"] == .number(Double(options.apiAllocation)))
        #expect(orgs.contains { $0["orgId"]?.stringValue == "00D000000000002EAA" && $0["auth"] == .null })
        let text = try await runSwitchboard(["salesforce", "status"], environment: env)
        #expect(text.output.contains("posts only (no API access)"))

        #expect(try await runSwitchboard(["salesforce", "disconnect", "--org-id", "00D000000000002EAA"], environment: env).status == 0)
        let again = try await runSwitchboard(["salesforce", "disconnect", "--org-id", "00D000000000002EAA"], environment: env)
        #expect(again.status == 1)
        #expect(again.output.contains("is not connected"))
        let after = try JSONParser.parseValue(try await runSwitchboard(["salesforce", "status", "--json"], environment: env).output)
        #expect(after["orgs"]?.arrayValue?.count == 1)
    }

    @Test("simulate salesforce runs on a free port, answers OAuth and REST as Salesforce does, stops cleanly on SIGINT")
    func simulate() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let out = dir.file("sim.log")
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServeProcess.binary)
        process.arguments = ["simulate", "salesforce", "--port", "0"]
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        var port: Int?
        for _ in 0..<200 {
            if let text = try? String(contentsOfFile: out, encoding: .utf8), let r = text.range(of: "http://127.0.0.1:") {
                port = Int(text[r.upperBound...].prefix { $0.isNumber })
                if port != nil { break }
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        let p = try #require(port)
        #expect(await HTTP.get("http://127.0.0.1:\(p)/_simulator/usage")?.status == 200)
        let unauthorized = try #require(await HTTP.get("http://127.0.0.1:\(p)/services/data/v62.0/sobjects/Case/describe"))
        #expect(unauthorized.status == 401)
        #expect(unauthorized.body.contains("INVALID_SESSION_ID"))
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let bad = try await runSwitchboard(["simulate", "salesforce", "--capture", "trigger"])
        #expect(bad.status == 64)
        #expect(bad.output.contains("--trigger-url"))
    }
}
