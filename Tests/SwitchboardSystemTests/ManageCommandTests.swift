import Foundation
import SwitchboardCore
import SwitchboardTestSupport
import Testing

@Suite("switchboard status, rules list|enable|disable, links, events replay")
struct ManageCommandTests {
    @Test("Rulesets switched off and on from the command line; a running server follows; links by hand; events replayed; the summary")
    func manage() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let recorder = try await RecordingServer.start()
        let env = ["SWITCHBOARD_DATABASE_URL": dir.file("db.sqlite"), "SWITCHBOARD_SINK_URL": recorder.url, "SWITCHBOARD_LOG_LEVEL": "warning"]
        let rules = dir.file("rules.yaml")
        try FaultScenarios.rules.write(toFile: rules, atomically: true, encoding: .utf8)
        #expect(try await runSwitchboard(["rules", "import", rules], environment: env).status == 0)

        let list = try JSONParser.parseValue(try await runSwitchboard(["rules", "list", "--json"], environment: env).output)
        #expect(list["rulesets"]?.arrayValue?.first?["enabled"] == .bool(true))
        let off = try await runSwitchboard(["rules", "disable", "crash test"], environment: env)
        #expect(off.status == 0, "\(off.output)")
        let unknown = try await runSwitchboard(["rules", "disable", "no such set"], environment: env)
        #expect(unknown.status == 1)
        #expect(unknown.output.contains("no ruleset is named \"no such set\""))
        #expect(try JSONParser.parseValue(try await runSwitchboard(["rules", "list", "--json"], environment: env).output)["rulesets"]?.arrayValue?.first?["enabled"] == .bool(false))

        // With the ruleset off, a high-priority case pages nobody; switched on again, the next one does.
        let serve = try await ServeProcess.start(arguments: [], environment: env, outputFile: dir.file("serve.log"))
        #expect(await HTTP.post(serve.baseURL + "/webhooks/salesforce", FaultScenarios.caseBody(1))?.status == 202)
        try await Task.sleep(for: .milliseconds(1500))
        #expect(recorder.snapshot.effects.isEmpty)
        #expect(try await runSwitchboard(["rules", "enable", "crash test"], environment: env).status == 0)
        try await Task.sleep(for: .milliseconds(1200))
        #expect(await HTTP.post(serve.baseURL + "/webhooks/salesforce", FaultScenarios.caseBody(2))?.status == 202)
        for _ in 0..<200 where recorder.snapshot.effects.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        #expect(recorder.snapshot.effects.first?.body["action"] == "createIncident")

        // Replay the first case's event: a dry run explains the verdicts now that the rules are on; --apply queues it.
        let dry = try await runSwitchboard(["events", "replay", "1"], environment: env)
        #expect(dry.status == 0, "\(dry.output)")
        #expect(dry.output.contains("page on high priority"))
        #expect(recorder.snapshot.effects.count == 2, "a dry run sends nothing")
        let applied = try await runSwitchboard(["events", "replay", "1", "--apply"], environment: env)
        #expect(applied.status == 0, "\(applied.output)")
        for _ in 0..<200 where recorder.snapshot.effects.count < 4 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(recorder.snapshot.effects.filter { $0.body["action"] == "createIncident" }.count == 2)
        #expect(try await runSwitchboard(["events", "replay", "99"], environment: env).status == 1)

        // Links by hand.
        #expect(try await runSwitchboard(["links", "add", "--incident", "PMANUAL", "--record", "5003000000D8cuI"], environment: env).status == 0)
        let links = try JSONParser.parseValue(try await runSwitchboard(["links", "list", "--incident", "PMANUAL", "--json"], environment: env).output)
        #expect(links.arrayValue?.first?["record"]?.stringValue == "5003000000D8cuIAAR")
        #expect(try await runSwitchboard(["links", "remove", "--incident", "PMANUAL", "--record", "5003000000D8cuIAAR"], environment: env).status == 0)
        #expect(try await runSwitchboard(["links", "remove", "--incident", "PMANUAL", "--record", "5003000000D8cuIAAR"], environment: env).status == 1)
        #expect(try await runSwitchboard(["links", "add", "--incident", "P1", "--record", "not-an-id"], environment: env).status == 64)

        let status = try JSONParser.parseValue(try await runSwitchboard(["status", "--json"], environment: env).output)
        #expect(status["ruleEngine"] == .bool(true))
        #expect(status["rulesVersion"] == .number(1))
        #expect(status["pagerDuty"] == .null)
        #expect(status["events"]?["processed"] == .number(3))
        serve.terminate()
        await recorder.stop()
    }
}
