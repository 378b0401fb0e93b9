import Foundation
import Testing

@testable import SwitchboardCore

@Suite("Values")
struct ValuesTests {
    @Test("Salesforce date-times in every format they arrive in", arguments: [
        ("2026-11-21T03:12:00.000+0000", "2026-11-21T03:12:00Z"),
        ("2020-10-02T18:45:22.169Z", "2020-10-02T18:45:22.169Z"),
        ("2026-11-21T04:12:00+01:00", "2026-11-21T03:12:00Z"),
        ("2026-11-20T22:12:00.5-05:00", "2026-11-21T03:12:00.500Z"),
        ("1969-12-31T23:59:59Z", "1969-12-31T23:59:59Z"),
    ])
    func instants(input: String, expected: String) throws {
        let instant = try #require(Instant(iso8601: input))
        #expect(instant.iso8601 == expected)
    }

    @Test("Malformed date-times are refused", arguments: [
        "2026-11-21", "2026-11-21T03:12:00", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-21T25:00:00Z", "garbage", "",
        "2026-11-21T03:12:00.Z", "2026-11-21T03:12:00Zjunk",
    ])
    func badInstants(input: String) {
        #expect(Instant(iso8601: input) == nil)
    }

    @Test("Calendar dates round-trip through days since 1970 and know their weekday")
    func localDates() throws {
        for days in stride(from: -700_000, through: 2_900_000, by: 997) {
            let d = LocalDate(daysSince1970: days)
            #expect(d.daysSince1970 == days)
            #expect(LocalDate(d.description) == d)
        }
        #expect(LocalDate("2026-11-24")?.isoWeekday == 2)  // a Tuesday
        #expect(LocalDate("2024-02-29") != nil)
        #expect(LocalDate("2026-02-29") == nil)
    }

    @Test("Salesforce Id checksums match real Ids", arguments: [
        ("001D000000IqhSL", "001D000000IqhSLIAZ"), ("5007000000OFL5F", "5007000000OFL5FAAX"), ("0031I0000081tbP", "0031I0000081tbPQAQ"),
    ])
    func salesforceIds(short: String, long: String) {
        #expect(SalesforceId.normalized(short) == long)
        #expect(SalesforceId.isValid(long))
        #expect(SalesforceId.same(short, long))
        // The 18-character form is case-insensitive: the suffix restores the case.
        #expect(SalesforceId.normalized(long.lowercased()) == long)
        #expect(!SalesforceId.same("001D000000IqhSL", "001d000000IqhSL"))
    }

    @Test("Values are typed by describe when known and by shape otherwise")
    func typing() {
        let schema = StandardObjects.all.first { $0.name == "Case" }
        let priority = schema?.field(named: "Priority")
        #expect(FieldValue(json: .string("High"), field: priority, name: "Priority") == .picklist(["High"]))
        #expect(FieldValue(json: .string("High"), field: nil, name: "Priority") == .text("High"))
        #expect(FieldValue(json: .string("2026-11-24"), field: nil, name: "Due__c") == .date(LocalDate("2026-11-24")!))
        #expect(FieldValue(json: .string("2026-11-21T03:12:00.000+0000"), field: nil, name: "CreatedDate") == .dateTime(Instant(iso8601: "2026-11-21T03:12:00Z")!))
        #expect(FieldValue(json: .string("001D000000IqhSL"), field: nil, name: "AccountId") == .reference(id: "001D000000IqhSLIAZ", label: nil))
        #expect(FieldValue(json: .string("001D000000IqhSL"), field: nil, name: "Note__c") == .text("001D000000IqhSL"))
        #expect(FieldValue(json: .number(23.5), field: nil, name: "Amount") == .number(23.5))
        #expect(FieldValue(json: .bool(true), field: nil, name: "IsEscalated") == .boolean(true))
        #expect(FieldValue(json: .null, field: nil, name: "X") == .null)
        let multi = FieldDescription(name: "Tags__c", salesforceType: "multipicklist")
        #expect(FieldValue(json: .string("four;six"), field: multi, name: "Tags__c") == .picklist(["four", "six"]))
        #expect(FieldValue.number(5).text == "5")
        #expect(FieldValue.number(2.5).text == "2.5")
        #expect(FieldValue.text("  ").isBlank)
    }

    @Test("Describe results decode into schemas with required fields")
    func describe() throws {
        let describe: JSONValue = .object([
            "name": "Widget__c",
            "fields": .array([
                .object(["name": "Id", "type": "id", "createable": .bool(false), "nillable": .bool(false), "defaultedOnCreate": .bool(true)]),
                .object(["name": "Name", "type": "string", "createable": .bool(true), "nillable": .bool(false), "defaultedOnCreate": .bool(false)]),
                .object(["name": "Kind__c", "type": "picklist", "createable": .bool(true), "nillable": .bool(true),
                         "picklistValues": .array([.object(["value": "a", "active": .bool(true)]), .object(["value": "b", "active": .bool(false)])])]),
            ]),
        ])
        let schema = try ObjectSchema(describe: describe)
        #expect(schema.requiredOnCreate.map(\.name) == ["Name"])
        #expect(schema.field(named: "kind__C")?.picklistValues == ["a"])
        #expect(schema.isFromDescribe)
    }

    @Test("The describe fixture of every field type decodes", .enabled(if: SharedReference.isAvailable, SharedReference.skipReason))
    func describeFixture() throws {
        let text = try SharedReference.text("salesforce/rest_sobject_describe_all_field_types.restforce.json")
        let schema = try ObjectSchema(describe: try JSONParser.parseValue(text))
        #expect(schema.field(named: "Currency_Field")?.type == .number)
        #expect(schema.field(named: "DateTime_Field")?.type == .dateTime)
        #expect(schema.field(named: "Picklist_Multiselect_Field")?.isMultiSelect == true)
        #expect(schema.field(named: "ParentWhizbang__c")?.type == .reference)
    }
}

@Suite("Hexadecimal text")
struct HexTests {
    @Test("Bytes become two lowercase digits each")
    func hexDigits() {
        #expect([UInt8]([0x00, 0x0F, 0xA5, 0xFF, 0x10]).hexString == "000fa5ff10")
        #expect([UInt8]().hexString == "")
        #expect((0...255).map { UInt8($0) }.hexString.count == 512)
        #expect(Array("hi".utf8).hexString == "6869")
    }
}
