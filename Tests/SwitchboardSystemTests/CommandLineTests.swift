import Foundation
import SwitchboardCore
import SwitchboardTestSupport
import Testing

@Suite("Command line against a database")
struct CommandLineTests {
    @Test("rules import, history, export, diff and restore keep every version")
    func rulesVersions() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let env = ["SWITCHBOARD_DATABASE_URL": dir.file("db.sqlite")]
        let first = dir.file("v1.yaml")
        let second = dir.file("v2.yaml")
        try FaultScenarios.rules.write(toFile: first, atomically: true, encoding: .utf8)
        try FaultScenarios.rules.replacingOccurrences(of: "value: High", with: "value: Urgent").write(toFile: second, atomically: true, encoding: .utf8)
        #expect(try await runSwitchboard(["rules", "export"], environment: env).output.contains("no rules are stored yet"))
        #expect(try await runSwitchboard(["rules", "import", first, "--comment", "first", "--author", "ana"], environment: env).output.contains("version 1"))
        #expect(try await runSwitchboard(["rules", "import", second, "--author", "ben"], environment: env).output.contains("version 2"))
        let history = try await runSwitchboard(["rules", "history", "--json"], environment: env)
        let versions = try JSONParser.parseValue(history.output).arrayValue ?? []
        #expect(versions.compactMap { $0["author"]?.stringValue } == ["ben", "ana"])
        let diff = try await runSwitchboard(["rules", "diff"], environment: env)
        #expect(diff.output.contains("- ") && diff.output.contains("value: High"))
        #expect(diff.output.contains("+ ") && diff.output.contains("value: Urgent"))
        #expect(try await runSwitchboard(["rules", "restore", "1"], environment: env).output.contains("Restored version 1 as version 3"))
        #expect(try await runSwitchboard(["rules", "export"], environment: env).output.contains("value: High"))
        #expect(try await runSwitchboard(["rules", "export", "--version", "2"], environment: env).output.contains("value: Urgent"))
        let bad = dir.file("bad.yaml")
        try "rulesets: [{ name: x, rules: [{ name: r }] }]".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try await runSwitchboard(["rules", "import", bad], environment: env)
        #expect(refused.status == 1)
        #expect(try await runSwitchboard(["rules", "history"], environment: env).output.components(separatedBy: "\n").filter { $0.hasPrefix("version") }.count == 3)
        #expect(try await runSwitchboard(["rules", "restore", "9"], environment: env).status == 1)
    }

    @Test("logs, events and dead letters from the command line")
    func operations() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let env = ["SWITCHBOARD_DATABASE_URL": dir.file("db.sqlite"), "SWITCHBOARD_LOG_LEVEL": "warning"]
        let rules = dir.file("rules.yaml")
        try FaultScenarios.rules.write(toFile: rules, atomically: true, encoding: .utf8)
        #expect(try await runSwitchboard(["rules", "import", rules], environment: env).status == 0)
        // No sink configured: actions fail for good, with a message saying what to connect.
        let serve = try await ServeProcess.start(arguments: [], environment: env, outputFile: dir.file("serve.log"))
        #expect(await HTTP.post(serve.baseURL + "/webhooks/salesforce", FaultScenarios.caseBody(7))?.status == 202)
        #expect(await HTTP.post(serve.baseURL + "/webhooks/pagerduty", "{broken")?.status == 400)
        var dead: [JSONValue] = []
        for _ in 0..<100 {
            dead = (try? JSONParser.parseValue(try await runSwitchboard(["deadletters", "list", "--json"], environment: env).output).arrayValue) ?? []
            if dead.count == 2 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        serve.terminate()
        #expect(dead.count == 2)
        #expect(dead.last?["action"] == "createIncident")
        #expect(dead.last?["error"]?.stringValue?.contains("not connected") == true)
        #expect(dead.first?["error"]?.stringValue?.contains("no incident was created") == true)
        let job = try #require(dead.last?["job"].flatMap { if case .number(let n) = $0 { Int(n) } else { nil } })
        let retried = try await runSwitchboard(["deadletters", "retry", String(job)], environment: env)
        #expect(retried.output.contains("job \(job) is queued again"))
        // The responders behind the creation come back with it.
        #expect(try await runSwitchboard(["deadletters", "list"], environment: env).output.contains("No dead letters."))
        #expect(try await runSwitchboard(["deadletters", "retry", "99999"], environment: env).status == 1)
        #expect(try await runSwitchboard(["deadletters", "drop", "99999"], environment: env).status == 1)

        let events = try JSONParser.parseValue(try await runSwitchboard(["events", "list", "--json"], environment: env).output).arrayValue ?? []
        #expect(events.count == 1)
        #expect(events.first?["status"] == "processed")
        #expect(try await runSwitchboard(["events", "show", "1"], environment: env).output.contains("\"Priority\": \"High\""))
        #expect(try await runSwitchboard(["events", "show", "42"], environment: env).status == 1)

        let errors = try await runSwitchboard(["logs", "--level", "error", "--payloads"], environment: env)
        #expect(errors.output.contains("refused malformed JSON"))
        #expect(errors.output.contains("payload: {broken"))
        let byRecord = try await runSwitchboard(["logs", "--record", SalesforceId.normalized("500300000000007"), "--json"], environment: env)
        #expect((try JSONParser.parseValue(byRecord.output).arrayValue ?? []).isEmpty == false)
        #expect(try await runSwitchboard(["logs", "--since", "yesterday"], environment: env).status == 64)
        #expect(try await runSwitchboard(["logs", "--level", "loud"], environment: env).status == 64)
    }
}
