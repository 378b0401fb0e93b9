import Foundation
import Testing

@testable import SwitchboardCore

@Suite("Published JSON Schema")
struct SchemaTests {
    @Test("The committed schema file is the one `rules schema` prints")
    func committed() throws {
        let file = try Repository.text("schemas/rules.schema.json")
        #expect(file.trimmingCharacters(in: .whitespacesAndNewlines) == RulesSchema.json.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test("The schema lists exactly the engine's operators, actions and PagerDuty fields")
    func catalogs() throws {
        let schema = try JSONParser.parseValue(RulesSchema.json)
        let defs = try #require(schema["$defs"])
        let operators = defs["operator"]?["enum"]?.arrayValue?.compactMap(\.stringValue)
        #expect(operators == Operator.allCases.map(\.rawValue))
        let fields = defs["pagerDutyField"]?["enum"]?.arrayValue?.compactMap(\.stringValue)
        #expect(fields == PagerDutyField.allCases.map(\.rawValue))
        let actions = defs["action"]?["oneOf"]?.arrayValue?.compactMap { $0["properties"]?["action"]?["const"]?.stringValue }
        #expect(actions == ActionKind.ruleActions.map(\.rawValue))
        for variant in defs["action"]?["oneOf"]?.arrayValue ?? [] {
            let name = variant["properties"]?["action"]?["const"]?.stringValue ?? ""
            let kind = try #require(ActionKind(rawValue: name))
            let keys = Set(variant["properties"]?.objectValue?.keys ?? [])
            #expect(keys == Set(["action"] + kind.parameters.map(\.name)), "\(name)")
        }
    }

    static var jsonschemaAvailable: Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import jsonschema"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    @Test(
        "Examples validate against the schema with a standard validator; broken files do not",
        .enabled(if: jsonschemaAvailable, "SKIPPED: Python's jsonschema is not installed (.ci/run installs it)"))
    func standardValidator() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("schema-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = try YAMLReader.parse(try Repository.text("examples/rules/support.yaml")).jsonValue
        let brokenYAML = try Repository.text("examples/rules/support.yaml")
            .replacingOccurrences(of: "operator: equals, value: High", with: "operator: equal, value: High")
        let bad = try YAMLReader.parse(brokenYAML).jsonValue
        let cases: [(String, JSONValue, Bool)] = [("good.json", good, true), ("bad.json", bad, false)]
        for (name, value, _) in cases {
            try value.serialized().write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        try RulesSchema.json.write(to: dir.appendingPathComponent("schema.json"), atomically: true, encoding: .utf8)
        let script = """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1]))
            jsonschema.Draft202012Validator.check_schema(schema)
            v = jsonschema.Draft202012Validator(schema)
            for path in sys.argv[2:]:
                print(path.split('/')[-1], 'valid' if v.is_valid(json.load(open(path))) else 'invalid')
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, dir.appendingPathComponent("schema.json").path] + cases.map { dir.appendingPathComponent($0.0).path }
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 0)
        #expect(text.contains("good.json valid"))
        #expect(text.contains("bad.json invalid"))
    }
}
