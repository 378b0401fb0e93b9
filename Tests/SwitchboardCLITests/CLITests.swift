import Foundation
import SwitchboardCore
import Testing

/// Runs the built `switchboard` executable as a user would, through its command line.
struct CLI {
    static let binary: URL = {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("switchboard"),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("switchboard"),
            Repository.root.appendingPathComponent(".build/debug/switchboard"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ arguments: [String], timeout: TimeInterval = 60) async throws -> Result {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = Repository.root
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        if process.isRunning {
            process.terminate()
            Issue.record("switchboard \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
        }
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: try String(contentsOf: out, encoding: .utf8), stderr: try String(contentsOf: err, encoding: .utf8))
    }
}

enum Repository {
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

/// A scratch file that is removed when the test ends.
struct TempFile: ~Copyable {
    let path: String

    init(_ contents: String, suffix: String = ".json") throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("sb-\(UUID().uuidString)\(suffix)").path
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
    }

    init(size: Int, suffix: String) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("sb-\(UUID().uuidString)\(suffix)").path
        _ = FileManager.default.createFile(atPath: path, contents: Data(repeating: UInt8(ascii: " "), count: size))
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Suite("Command line: rules")
struct CLITests {
    let rulesFile = "examples/rules/support.yaml"
    let caseEvent = "examples/events/case-created-after-hours.json"
    let incidentEvent = "examples/events/incident-triggered-xyz.json"

    @Test("The executable is built")
    func binaryExists() {
        #expect(FileManager.default.isExecutableFile(atPath: CLI.binary.path), "expected \(CLI.binary.path); build with `swift build` first")
    }

    @Test("rules validate accepts the example and prints a summary")
    func validate() async throws {
        let r = try await CLI.run(["rules", "validate", rulesFile])
        #expect(r.status == 0)
        #expect(r.stdout.contains("is valid: 2 rulesets, 6 rules, 1 calendar"))
    }

    @Test("rules validate reports each problem with its path and line and exits 1")
    func validateProblems() async throws {
        let bad = try TempFile(
            """
            version: 1
            rulesets:
              - name: x
                rules:
                  - name: r
                    object: Case
                    runOn: salesforce
                    conditions:
                      - { field: Priority, operator: equal, value: High }
                    applyTo: new
                    actions:
                      - { action: runResponsePlay, responsePlay: P }
            """, suffix: ".yaml")
        let r = try await CLI.run(["rules", "validate", bad.path])
        #expect(r.status == 1)
        #expect(r.stderr.contains("rulesets[0].rules[0].conditions[0].operator (line 9): unknown value; found \"equal\""))
        #expect(r.stderr.contains("did you mean \"equals\"?"))
        #expect(r.stderr.contains("rulesets[0].rules[0].actions[0].action (line 12): Run Response Play is deprecated"))
        let json = try await CLI.run(["rules", "validate", bad.path, "--json"])
        #expect(json.status == 1)
        let parsed = try JSONParser.parseValue(json.stdout)
        #expect(parsed["valid"] == .bool(false))
        #expect(parsed["problems"]?.arrayValue?.count == 2)
        #expect(parsed["problems"]?.arrayValue?.first?["path"] == .string("rulesets[0].rules[0].conditions[0].operator"))
        #expect(parsed["problems"]?.arrayValue?.first?["line"] == .number(9))
    }

    @Test("rules test --json on the after-hours case: one createIncident with the final title")
    func dryRunCase() async throws {
        let r = try await CLI.run(["rules", "test", "--rules", rulesFile, "--event", caseEvent, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let out = try JSONParser.parseValue(r.stdout)
        let actions = try #require(out["actions"]?.arrayValue)
        #expect(actions.count == 1)
        let a = actions[0]
        #expect(a["action"] == .string("createIncident"))
        #expect(a["ruleset"] == .string("SFDC > PD"))
        #expect(a["rule"] == .string("Page support on high priority cases after hours"))
        #expect(a["record"] == .string("5003000000D8cuIAAR"))
        #expect(a["incident"] == .null)
        #expect(a["title"] == .string("Case 00001026 Checkout page returns 500 for all EU customers"))
        #expect(a["service"] == .string("PSUPPORT"))
        #expect(a["urgency"] == .string("high"))
        let rules = try #require(out["rules"]?.arrayValue)
        let first = try #require(rules.first { $0["rule"] == .string("Page support on high priority cases after hours") })
        #expect(first["matched"] == .bool(true))
        #expect(first["conditions"]?.arrayValue?.map { $0["matched"] } == [.bool(true), .bool(true)])
    }

    @Test("rules test on the XYZ incident creates a Case with every required field")
    func dryRunIncident() async throws {
        let r = try await CLI.run(["rules", "test", "--rules", rulesFile, "--event", incidentEvent, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let out = try JSONParser.parseValue(r.stdout)
        let a = try #require(out["actions"]?.arrayValue?.first)
        #expect(a["action"] == .string("createRecord"))
        #expect(a["object"] == .string("Case"))
        #expect(a["incident"] == .string("PGR0VU2"))
        let fields = try #require(a["fields"]?.objectValue)
        for required in ["Subject", "Status", "Origin"] { #expect(fields[required] != nil, "\(required) missing") }
        #expect(fields["Subject"] == .string("Payments API error rate above 5%"))
        #expect(out["rules"]?.arrayValue?.allSatisfy { ($0["warnings"]?.arrayValue ?? []).isEmpty } == true)
    }

    @Test("rules test during business hours (--now) plans nothing and says why")
    func dryRunInHours() async throws {
        let rules = try TempFile(
            """
            calendars: [{ name: support, timeZone: America/New_York, weekly: { monday: ["09:00-17:00"] } }]
            rulesets:
              - name: s
                rules:
                  - name: after hours
                    object: Case
                    runOn: salesforce
                    conditions: [{ operator: outsideBusinessHours, value: support }]
                    applyTo: new
                    actions: [{ action: createIncident, service: P }]
            """, suffix: ".yaml")
        let monday = try await CLI.run(["rules", "test", "--rules", rules.path, "--event", caseEvent, "--now", "2026-11-23T15:00:00Z"])
        #expect(monday.status == 0)
        #expect(monday.stdout.contains("No actions planned."))
        #expect(monday.stdout.contains("10:00 in America/New_York is open in support"))
        let night = try await CLI.run(["rules", "test", "--rules", rules.path, "--event", caseEvent, "--now", "2026-11-23T03:00:00Z"])
        #expect(night.stdout.contains("Planned actions (1):"))
    }

    @Test("Links make linked rules act on their incidents")
    func links() async throws {
        let update = try TempFile(
            #"{"object":"Case","isInsert":false,"old":{"5003000000D8cuIAAR":{"attributes":{"type":"Case"},"Id":"5003000000D8cuIAAR","Status":"Working"}},"new":{"5003000000D8cuIAAR":{"attributes":{"type":"Case"},"Id":"5003000000D8cuIAAR","Status":"Closed","CaseNumber":"00001026"}}}"#)
        let links = try TempFile(#"[{"incident":"PABC123","object":"Case","record":"5003000000D8cuIAAR"}]"#)
        let r = try await CLI.run(["rules", "test", "--rules", rulesFile, "--event", update.path, "--links", links.path, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let a = try #require(try JSONParser.parseValue(r.stdout)["actions"]?.arrayValue?.first)
        #expect(a["action"] == .string("resolve"))
        #expect(a["incident"] == .string("PABC123"))
        #expect(a["resolution"] == .string("Case 00001026 was closed in Salesforce."))
    }

    @Test("rules schema prints the committed schema")
    func schema() async throws {
        let r = try await CLI.run(["rules", "schema"])
        #expect(r.status == 0)
        let committed = try String(contentsOf: Repository.root.appendingPathComponent("schemas/rules.schema.json"), encoding: .utf8)
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == committed.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test("Bad input: a one-line error and a documented exit code, never a crash or a hang")
    func badInput() async throws {
        let missing = try await CLI.run(["rules", "validate", "/nonexistent/rules.yaml"])
        #expect(missing.status == 2)
        #expect(missing.stderr == "error: rules file /nonexistent/rules.yaml does not exist\n")

        let huge = try TempFile(size: 10 * 1024 * 1024, suffix: ".yaml")
        let tooBig = try await CLI.run(["rules", "validate", huge.path])
        #expect(tooBig.status == 2)
        #expect(tooBig.stderr.contains("the limit is"))

        let hugeEvent = try TempFile(size: 10 * 1024 * 1024, suffix: ".json")
        let bigEvent = try await CLI.run(["rules", "test", "--rules", rulesFile, "--event", hugeEvent.path])
        #expect(bigEvent.status == 2)

        let malformed = try TempFile("{\"object\": \"Case\", ")
        let badEvent = try await CLI.run(["rules", "test", "--rules", rulesFile, "--event", malformed.path])
        #expect(badEvent.status == 1)
        #expect(badEvent.stderr.hasPrefix("error: \(malformed.path): line 1"))

        let wrongType = try TempFile(#"{"object": "Case", "isInsert": "yes", "new": {}}"#)
        #expect(try await CLI.run(["rules", "test", "--rules", rulesFile, "--event", wrongType.path]).status == 1)

        let binary = try TempFile(size: 0, suffix: ".yaml")
        try Data([0xFF, 0xFE, 0x00, 0x41]).write(to: URL(fileURLWithPath: binary.path))
        let notText = try await CLI.run(["rules", "validate", binary.path])
        #expect(notText.status == 2)
        #expect(notText.stderr.contains("not UTF-8"))

        let flag = try await CLI.run(["rules", "validate", rulesFile, "--frobnicate"])
        #expect(flag.status == 64)
        let noArgs = try await CLI.run(["rules", "test", "--rules", rulesFile])
        #expect(noArgs.status == 64)
        let badNow = try await CLI.run(["rules", "test", "--rules", rulesFile, "--event", caseEvent, "--now", "tomorrow"])
        #expect(badNow.status == 64)
        #expect(badNow.stderr.contains("ISO 8601"))

        let badLinks = try TempFile(#"[{"incident": 5}]"#)
        #expect(try await CLI.run(["rules", "test", "--rules", rulesFile, "--event", caseEvent, "--links", badLinks.path]).status == 1)
    }

    @Test("--help works on every command")
    func help() async throws {
        for command in [[], ["rules"], ["rules", "validate"], ["rules", "test"], ["rules", "schema"]] {
            let r = try await CLI.run(command + ["--help"])
            #expect(r.status == 0)
            #expect(r.stdout.contains("USAGE"))
        }
    }
}
