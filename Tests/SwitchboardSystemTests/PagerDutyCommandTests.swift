import Foundation
import SwitchboardCore
import SwitchboardSimulators
import SwitchboardStorage
import SwitchboardTestSupport
import Testing

@Suite("switchboard pagerduty connect, status, disconnect", .serialized)
struct PagerDutyCommandTests {
    @Test("Connect creates the subscription for the public URL; a running server receives signed deliveries; disconnect removes the extension")
    func lifecycle() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var options = PagerDutySimulator.Options()
        options.retryDelay = .milliseconds(20)
        let simulator = PagerDutySimulator(options: options)
        try await simulator.start()
        let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        let env = ["SWITCHBOARD_DATABASE_URL": dir.file("db.sqlite"), "SWITCHBOARD_SECRET_KEY": key, "SWITCHBOARD_LOG_LEVEL": "warning"]
        // Without an encryption key, nothing is stored.
        let noKey = try await runSwitchboard(["pagerduty", "connect", "--api-key", "simulatorkey0000", "--from", "switchboard@example.com", "--public-url", "http://127.0.0.1:1", "--base-url", simulator.baseURL], environment: ["SWITCHBOARD_DATABASE_URL": dir.file("db.sqlite")])
        #expect(noKey.status == 1)
        #expect(noKey.output.contains("SWITCHBOARD_SECRET_KEY"))
        // A refused key and an unknown user are refused with a reason.
        let badKey = try await runSwitchboard(["pagerduty", "connect", "--api-key", "wrong", "--from", "switchboard@example.com", "--public-url", "http://127.0.0.1:1", "--base-url", simulator.baseURL], environment: env)
        #expect(badKey.status == 1)
        #expect(badKey.output.contains("refused the API key"))
        let badUser = try await runSwitchboard(["pagerduty", "connect", "--api-key", "simulatorkey0000", "--from", "nobody@example.com", "--public-url", "http://127.0.0.1:1", "--base-url", simulator.baseURL], environment: env)
        #expect(badUser.status == 1)
        #expect(badUser.output.contains("no PagerDuty user has the email nobody@example.com"))

        // The server first, to know its URL.
        let serve = try await ServeProcess.start(arguments: [], environment: env, outputFile: dir.file("serve.log"))
        let connect = try await runSwitchboard(
            ["pagerduty", "connect", "--api-key", "simulatorkey0000", "--from", "switchboard@example.com", "--public-url", serve.baseURL, "--base-url", simulator.baseURL],
            environment: env)
        #expect(connect.status == 0, "\(connect.output)")
        #expect(connect.output.contains("/webhooks/pagerduty"))
        // The key is stored encrypted.
        let raw = try String(contentsOfFile: dir.file("db.sqlite"), encoding: .isoLatin1)
        #expect(!raw.contains("simulatorkey0000"))
        let status = try await runSwitchboard(["pagerduty", "status", "--json"], environment: env)
        let json = try JSONParser.parseValue(status.output)
        #expect(json["connected"] == .bool(true))
        #expect(json["webhook"]?.stringValue?.hasSuffix("active") == true)

        // A person triggers an incident in PagerDuty: the signed delivery reaches the server (within the 5 s budget).
        simulator.triggerIncident(service: "XYZ", title: "Payments down", user: "maeve@example.com")
        var delivered = false
        for _ in 0..<100 {
            if simulator.deliveries.contains(where: { $0.status == 202 }) {
                delivered = true
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(delivered, "\(simulator.deliveries.map { "\($0.eventType) \($0.status ?? 0)" })")
        let logs = try await runSwitchboard(["logs", "--category", "intake"], environment: env)
        #expect(logs.output.contains("PagerDuty delivery incident.triggered"))

        let disconnect = try await runSwitchboard(["pagerduty", "disconnect"], environment: env)
        #expect(disconnect.status == 0, "\(disconnect.output)")
        #expect(try JSONParser.parseValue(try await runSwitchboard(["pagerduty", "status", "--json"], environment: env).output)["connected"] == .bool(false))
        let state = try #require(await HTTP.get(simulator.baseURL + "/_simulator/state"))
        #expect(try JSONParser.parseValue(state.body)["subscriptions"]?.arrayValue?.isEmpty == true)
        serve.terminate()
        await simulator.stop()
    }
}

@Suite("switchboard simulate pagerduty")
struct SimulateCommandTests {
    @Test("Runs on a free port, answers, stops cleanly on SIGINT")
    func simulate() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let out = dir.file("sim.log")
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServeProcess.binary)
        process.arguments = ["simulate", "pagerduty", "--port", "0"]
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
        let state = await HTTP.get("http://127.0.0.1:\(p)/_simulator/state")
        #expect(state?.status == 200)
        let unauthorized = await HTTP.get("http://127.0.0.1:\(p)/incidents")
        #expect(unauthorized?.status == 401)
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }
}
