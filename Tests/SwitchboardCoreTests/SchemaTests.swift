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

    /// Runs a Python script with arguments; returns its exit status and standard output.
    static func python(_ script: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script] + arguments
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, output)
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
        let (status, text) = try Self.python(script, [dir.appendingPathComponent("schema.json").path] + cases.map { dir.appendingPathComponent($0.0).path })
        #expect(status == 0)
        #expect(text.contains("good.json valid"))
        #expect(text.contains("bad.json invalid"))
    }

    /// Every value of `value` replaced in turn by each JSON type it is not, and every object given an unknown key.
    static func mutations(of value: JSONValue, at path: String = "") -> [(path: String, document: JSONValue)] {
        let replacements: [JSONValue] = [.number(7), .bool(true), .null, .string("x"), .array([]), .object([:])]
        var out = replacements.filter { !$0.sameKind(as: value) }.map { ("\(path.isEmpty ? "/" : path) = \($0.serialized())", $0) }
        switch value {
        case .object(let object):
            var extra = object
            extra["unexpectedKey"] = .string("x")
            out.append(("\(path)/unexpectedKey", .object(extra)))
            for (key, child) in object.entries {
                for (p, mutated) in mutations(of: child, at: "\(path)/\(key)") {
                    var copy = object
                    copy[key] = mutated
                    out.append((p, .object(copy)))
                }
            }
        case .array(let items):
            for (i, child) in items.enumerated() {
                for (p, mutated) in mutations(of: child, at: "\(path)/\(i)") {
                    var copy = items
                    copy[i] = mutated
                    out.append((p, .array(copy)))
                }
            }
        default: break
        }
        return out
    }

    @Test(
        "Whatever the published schema refuses, the loader refuses too (each value of the examples given every other type)",
        .enabled(if: jsonschemaAvailable, "SKIPPED: Python's jsonschema is not installed (.ci/run installs it)"))
    func loaderAtLeastAsStrictAsSchema() throws {
        var variants: [(name: String, document: JSONValue)] = []
        let fixtures = [
            ("support.yaml", try Repository.text("examples/rules/support.yaml")), ("product brief", RulesLoaderTests.valid),
            ("every-key.yaml", try Repository.text("Tests/SwitchboardCoreTests/Fixtures/every-key.yaml")),
        ]
        for (name, yaml) in fixtures {
            // The variants are judged against the original: it must be valid for both, or the comparison says nothing.
            _ = try rules(yaml)
            for (path, document) in Self.mutations(of: try YAMLReader.parse(yaml).jsonValue) { variants.append(("\(name) \(path)", document)) }
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("schema-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try RulesSchema.json.write(to: dir.appendingPathComponent("schema.json"), atomically: true, encoding: .utf8)
        try JSONValue.array(variants.map(\.document)).serialized().write(to: dir.appendingPathComponent("variants.json"), atomically: true, encoding: .utf8)
        let script = """
            import json, sys, jsonschema
            v = jsonschema.Draft202012Validator(json.load(open(sys.argv[1])))
            print(' '.join('1' if v.is_valid(d) else '0' for d in json.load(open(sys.argv[2]))))
            """
        let (status, text) = try Self.python(script, [dir.appendingPathComponent("schema.json").path, dir.appendingPathComponent("variants.json").path])
        let verdicts = text.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) == "1" }
        try #require(status == 0 && verdicts.count == variants.count)
        #expect(variants.count > 500, "the examples give \(variants.count) variants")
        var refusedBySchema = 0
        for ((name, document), schemaValid) in zip(variants, verdicts) where !schemaValid {
            refusedBySchema += 1
            #expect(throws: (any Error).self, "the schema refuses \(name), the loader accepts it") {
                _ = try RulesLoader().load(document.serialized(), format: .json)
            }
        }
        #expect(refusedBySchema > variants.count / 2)
    }
}

extension JSONValue {
    fileprivate func sameKind(as other: JSONValue) -> Bool {
        switch (self, other) {
        case (.null, .null), (.bool, .bool), (.number, .number), (.string, .string), (.array, .array), (.object, .object): true
        default: false
        }
    }
}
