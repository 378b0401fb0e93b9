import Foundation
import Testing

@testable import SwitchboardCore

@Suite("Reading JSON and YAML")
struct DocumentTests {
    @Test("JSON keeps key order, escapes and line numbers")
    func json() throws {
        let node = try JSONParser.parse("{\n  \"b\": 1,\n  \"a\": \"\\u00e9\\ud83d\\ude00\\n\",\n  \"c\": [true, null, -1.5e3]\n}")
        guard case .object(let entries) = node.kind else { Issue.record("not an object"); return }
        #expect(entries.map(\.key) == ["b", "a", "c"])
        #expect(entries[1].value.jsonValue == .string("é😀\n"))
        #expect(entries[2].keyLine == 4)
        #expect(node.jsonValue["c"] == .array([.bool(true), .null, .number(-1500)]))
        let round = try JSONParser.parseValue(node.jsonValue.serialized(pretty: true))
        #expect(round == node.jsonValue)
        // Parsing straight into values gives what the nodes give, key order included.
        let text = "{\"z\": {\"y\": [1, {\"x\": \"w\", \"a\": false}], \"b\": null}, \"c\": \"\\u00e9\", \"a\": []}"
        let direct = try JSONParser.parseValue(text)
        #expect(try direct == JSONParser.parse(text).jsonValue)
        #expect(direct.objectValue?.keys == ["z", "c", "a"])
        #expect(direct["z"]?["y"]?.arrayValue?[1].objectValue?.keys == ["x", "a"])
    }

    @Test("Malformed JSON is refused with the line and column", arguments: [
        ("{\"a\": 1,}", "expected a quoted key"), ("{\"a\" 1}", "expected ':'"), ("[1, 2", "unexpected end of input"),
        ("{\"a\": 1, \"a\": 2}", "duplicate key"), ("\"\\x\"", "invalid escape"), ("01", "unexpected"), ("", "empty"),
        ("{\"a\": tru}", "expected a value"), ("\"\\ud800\"", "surrogate"), ("[1] [2]", "after the end"), ("nul", "expected a value"),
    ])
    func malformed(text: String, fragment: String) {
        #expect {
            _ = try JSONParser.parse(text)
        } throws: { error in
            "\(error)".contains(fragment)
        }
        // Payloads are parsed straight into values: the same checks, the same message.
        #expect {
            _ = try JSONParser.parseValue(text)
        } throws: { error in
            "\(error)".contains(fragment)
        }
    }

    @Test("Deeply nested JSON is refused instead of exhausting the stack")
    func deepJSON() {
        let text = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: DocumentError.self) { _ = try JSONParser.parse(text) }
        #expect(throws: DocumentError.self) { _ = try JSONParser.parseValue(text) }
    }

    @Test("JSON objects keep key order, compare and hash regardless of it, and stay right past the size where they index their keys")
    func objects() throws {
        for size in [3, 11, 12, 13, 40] {
            var object = JSONObject()
            for i in 0..<size { object["k\(i)"] = .number(Double(i)) }
            #expect(object.keys == (0..<size).map { "k\($0)" })
            var reversed = JSONObject()
            for i in (0..<size).reversed() { reversed["k\(i)"] = .number(Double(i)) }
            #expect(object == reversed && object.hashValue == reversed.hashValue, "\(size) keys")
            #expect(Set([JSONValue.object(object), .object(reversed)]).count == 1)
            // An update keeps the key's place; a removal closes the gap, and every other key is still found.
            object["k1"] = .string("one")
            #expect(object.keys[1] == "k1" && object["k1"] == .string("one"))
            object["k0"] = nil
            #expect(object.count == size - 1 && object["k0"] == nil && object.keys.first == "k1")
            for i in 1..<size { #expect(object["k\(i)"] != nil, "k\(i) of \(size)") }
            object["k0"] = .null
            #expect(object.keys.last == "k0" && object["k0"] == .null)
            #expect(object != reversed)
            // Parsed: a repeated key is refused at any size, and the text comes back in its order.
            let text = "{" + (0..<size).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + "}"
            #expect(try JSONParser.parseValue(text).serialized() == text)
            let repeated = "{" + (0..<size).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + ",\"k\(size - 1)\":0}"
            #expect(throws: DocumentError.self) { _ = try JSONParser.parseValue(repeated) }
        }
        // Many keys are looked up by index, not one by one: 100,000 of them parse at once.
        let wide = "{" + (0..<100_000).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + "}"
        let parsed = try JSONParser.parseValue(wide)
        #expect(parsed.objectValue?.count == 100_000 && parsed["k99999"] == .number(99_999))
    }

    @Test("Invalid UTF-8 inside a JSON string is refused")
    func invalidUTF8() throws {
        let quote: UInt8 = 0x22
        let invalid: [[UInt8]] = [
            [0xC3, 0x28],  // a lead byte without its continuation
            [0x80],  // a lone continuation byte
            [0x61, 0xE2, 0x82],  // cut short at the end of the string
            [0xC0, 0xAF],  // an overlong '/'
            [0xED, 0xA0, 0x80],  // a UTF-16 surrogate
            [0xF4, 0x90, 0x80, 0x80],  // beyond U+10FFFF
            [0xFF],
        ]
        for bytes in invalid {
            // Both ways through a string: without and with an escape before the bad bytes.
            for body in [[quote] + bytes + [quote], [quote, 0x5C, 0x6E] + bytes + [quote]] {
                #expect(throws: DocumentError.self, "\(body)") { _ = try JSONParser.parse(bytes: body) }
                #expect(throws: DocumentError.self, "\(body)") { _ = try JSONParser.parseValue(bytes: body) }
            }
        }
        // Valid text comes back unchanged, a replacement character written by the sender included.
        for text in ["café", "日本語 😀", "e\u{301}", "\u{FFFD}", "a\u{FFFD}\u{10FFFF}"] {
            for body in ["\"\(text)\"", "\"\\n\(text)\""] {
                let expected = body.contains("\\n") ? "\n" + text : text
                #expect(try JSONParser.parseValue(body) == .string(expected))
                #expect(try JSONParser.parse(body).kind == .string(expected))
            }
        }
    }

    @Test("YAML scalars follow YAML 1.2: no Norway problem, identifiers keep leading zeros")
    func yamlScalars() throws {
        let node = try YAMLReader.parse("a: no\nb: 00001026\nc: 12.5\nd: true\ne: \"true\"\nf: ~\ng: 09:00-17:00\nh: '7'\n")
        #expect(node["a"]?.kind == .string("no"))
        #expect(node["b"]?.kind == .string("00001026"))
        #expect(node["c"]?.kind == .number(12.5))
        #expect(node["d"]?.kind == .bool(true))
        #expect(node["e"]?.kind == .string("true"))
        #expect(node["f"]?.kind == .null)
        #expect(node["g"]?.kind == .string("09:00-17:00"))
        #expect(node["h"]?.kind == .string("7"))
        #expect(node["d"]?.line == 4)
    }

    @Test("Hostile YAML is refused quickly", arguments: [
        String(repeating: "[", count: 50_000),
        String(repeating: "- ", count: 5_000) + "x",
        (0..<600).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n"),
        "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f]\n",
        "a: b\n\tc: d", "a: [1, 2", "a: 1\na: 2", "--- a\n--- b",
    ])
    func hostileYAML(text: String) {
        #expect(throws: DocumentError.self) { _ = try YAMLReader.parse(text) }
    }

    @Test("A YAML syntax error names its line")
    func yamlLine() {
        do {
            _ = try YAMLReader.parse("version: 1\nrulesets:\n  - name: x\n   bad: indentation\n")
            Issue.record("parsed")
        } catch {
            #expect(error.line == 4)
        }
    }
}

@Suite("Writing JSON")
struct JSONWritingTests {
    @Test("Text is escaped where JSON requires it and kept as it is elsewhere; keys keep their order")
    func escapesAndOrder() throws {
        let value: JSONValue = .object([
            "plain": "Case 00001234", "quote\"key": "say \"hi\"", "path": "C:\\temp\\x", "lines": "a\nb\r\nc\td",
            "control": "\u{01}x\u{1F}", "wide": "café ✓ 🚒 e\u{301}", "": "", "mixed": "🚒\"\\\u{0}end",
        ])
        let text = value.serialized()
        #expect(
            text
                == #"{"plain":"Case 00001234","quote\"key":"say \"hi\"","path":"C:\\temp\\x","lines":"a\nb\r\nc\td","control":"\u0001x\u001f","wide":"café ✓ 🚒 é","":"","mixed":"🚒\"\\\u0000end"}"#
        )
        #expect(try JSONParser.parseValue(text) == value)
        #expect(try JSONParser.parseValue(value.serialized(pretty: true)) == value)
    }

    @Test("Any text survives writing and reading back")
    func anyTextRoundTrips() throws {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [Unicode.Scalar] = ["a", "\"", "\\", "\n", "\u{0}", "\u{1F}", "\u{7F}", "é", "\u{301}", "✓", "🚒", "\u{2028}", "/"]
        for _ in 0..<500 {
            var s = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0..<24, using: &generator) { s.append(alphabet.randomElement(using: &generator) ?? "a") }
            let value = JSONValue.array([.string(String(s)), .object([String(s): .string(String(s))])])
            #expect(try JSONParser.parseValue(value.serialized()) == value, "\(String(s).debugDescription)")
        }
    }
}
