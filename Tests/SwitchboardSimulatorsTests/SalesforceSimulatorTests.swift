import AsyncHTTPClient
import CryptoExtras
import Foundation
import JWTKit
import NIOCore
import SwitchboardCore
import SwitchboardSimulators
import Testing

/// Talks to a started simulator over real HTTP.
struct SalesforceClient {
    let simulator: SalesforceSimulator
    var token: String?
    var version = "64.0"

    struct Answer {
        var status: Int
        var headers: [(String, String)]
        var text: String
        var json: JSONValue? { try? JSONParser.parseValue(text) }
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    func send(_ method: String, _ path: String, headers: [(String, String)] = [], body: String? = nil, contentType: String = "application/json")
        async throws -> Answer
    {
        var request = HTTPClientRequest(url: simulator.baseURL + path)
        request.method = .init(rawValue: method)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (k, v) in headers { request.headers.replaceOrAdd(name: k, value: v) }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(20))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, text: String(buffer: bytes))
    }

    /// `/services/data/v64.0/<path>`.
    func api(_ method: String, _ path: String, _ body: String? = nil, headers: [(String, String)] = []) async throws -> Answer {
        try await send(method, "/services/data/v\(version)/\(path)", headers: headers, body: body)
    }

    func form(_ fields: [(String, String)], headers: [(String, String)] = []) async throws -> Answer {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let body = fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.1)" }.joined(separator: "&")
        var client = self
        client.token = nil
        return try await client.send("POST", "/services/oauth2/token", headers: headers, body: body, contentType: "application/x-www-form-urlencoded")
    }

    /// A client logged in with client credentials.
    func loggedIn() async throws -> SalesforceClient {
        let answer = try await form([
            ("grant_type", "client_credentials"), ("client_id", "SWITCHBOARD_CONSUMER_KEY"), ("client_secret", "switchboard-client-secret"),
        ])
        var client = self
        client.token = answer.json?["access_token"]?.stringValue
        return client
    }
}

/// Starts a simulator, runs `body`, and always stops it.
func withSalesforce(_ options: SalesforceSimulator.Options = .init(), _ body: (SalesforceSimulator, SalesforceClient) async throws -> Void)
    async throws
{
    let simulator = SalesforceSimulator(options: options)
    try await simulator.start()
    do {
        let client = try await SalesforceClient(simulator: simulator).loggedIn()
        try await body(simulator, client)
    } catch {
        await simulator.stop()
        throw error
    }
    await simulator.stop()
}

/// The checksum rule from the contract, written out again so the test does not trust the code under test.
func expectedChecksum(_ head: String) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345")
    let chars = Array(head)
    return String(
        (0..<3).map { chunk in
            var bits = 0
            for i in 0..<5 where chars[chunk * 5 + i].isUppercase && chars[chunk * 5 + i].isASCII { bits |= 1 << i }
            return alphabet[bits]
        })
}

/// One RSA key pair for the JWT tests (2,048 bits: the smallest JWTKit accepts).
enum TestKeys {
    static let main = Result { try _RSA.Signing.PrivateKey(keySize: .bits2048) }
    static let other = Result { try _RSA.Signing.PrivateKey(keySize: .bits2048) }
}

struct AssertionClaims: JWTPayload {
    var iss: String
    var sub: String?
    var prn: String?
    var aud: String
    var exp: Int?
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

func signAssertion(_ claims: AssertionClaims, key: _RSA.Signing.PrivateKey) async throws -> String {
    let keys = JWTKeyCollection()
    await keys.add(rsa: try Insecure.RSA.PrivateKey(backing: key), digestAlgorithm: .sha256)
    return try await keys.sign(claims)
}

@Suite("Salesforce simulator: OAuth")
struct SalesforceSimulatorOAuthTests {
    func options() throws -> SalesforceSimulator.Options {
        SalesforceSimulator.Options(certificatePublicKeyPEM: try TestKeys.main.get().publicKey.pemRepresentation, refreshTokens: ["refresh-1"])
    }

    func claims(aud: String = "https://login.salesforce.com", exp: Int? = Int(Date().timeIntervalSince1970) + 120) -> AssertionClaims {
        AssertionClaims(iss: "SWITCHBOARD_CONSUMER_KEY", sub: "integration@example.com", prn: nil, aud: aud, exp: exp)
    }

    @Test("a JWT signed with the connected app's key gets a token that works, without a refresh token")
    func jwtAccepted() async throws {
        try await withSalesforce(try options()) { simulator, client in
            let jwt = try await signAssertion(claims(), key: try TestKeys.main.get())
            let answer = try await client.form([("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", jwt)])
            #expect(answer.status == 200)
            let body = try #require(answer.json)
            #expect(body["instance_url"]?.stringValue == simulator.baseURL)
            #expect(body["token_type"]?.stringValue == "Bearer")
            #expect(body["refresh_token"] == nil)
            #expect(body["signature"]?.stringValue?.isEmpty == false)
            #expect(Int64(body["issued_at"]?.stringValue ?? "") ?? 0 > 1_700_000_000_000)
            let id = try #require(body["id"]?.stringValue)
            #expect(id == "\(simulator.baseURL)/id/00D000000000001EAA/\(simulator.integrationUserId)")
            #expect(simulator.integrationUserId.hasPrefix("005") && simulator.integrationUserId.count == 18)
            var authed = client
            authed.token = body["access_token"]?.stringValue
            #expect(try await authed.api("GET", "limits").status == 200)
            // The simulator's own URL is an accepted audience too (My Domain).
            let mine = try await signAssertion(self.claims(aud: simulator.baseURL), key: try TestKeys.main.get())
            #expect(try await client.form([("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", mine)]).status == 200)
        }
    }

    @Test("wrong audience, expiry, signature, issuer or subject are refused with Salesforce's errors")
    func jwtRefused() async throws {
        try await withSalesforce(try options()) { _, client in
            let now = Int(Date().timeIntervalSince1970)
            func attempt(_ c: AssertionClaims, key: _RSA.Signing.PrivateKey? = nil) async throws -> (String?, String?) {
                let jwt = try await signAssertion(c, key: try key ?? TestKeys.main.get())
                let answer = try await client.form([("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", jwt)])
                #expect(answer.status == 400)
                return (answer.json?["error"]?.stringValue, answer.json?["error_description"]?.stringValue)
            }
            #expect(try await attempt(claims(aud: "https://example.com")) == ("invalid_grant", "audience is invalid"))
            #expect(try await attempt(claims(exp: now - 60)) == ("invalid_grant", "expired authorization code"))
            #expect(try await attempt(claims(exp: now + 3600)) == ("invalid_grant", "expired authorization code"))
            #expect(try await attempt(claims(exp: nil)) == ("invalid_grant", "invalid assertion"))
            #expect(try await attempt(claims(), key: try TestKeys.other.get()) == ("invalid_grant", "invalid assertion"))
            var wrongIssuer = claims()
            wrongIssuer.iss = "someone-else"
            #expect(try await attempt(wrongIssuer) == ("invalid_client_id", "client identifier invalid"))
            var wrongUser = claims()
            wrongUser.sub = "nobody@example.com"
            #expect(try await attempt(wrongUser) == ("invalid_grant", "user hasn't approved this consumer"))
            // `prn` wins over `sub`.
            var both = claims()
            both.sub = "nobody@example.com"
            both.prn = "integration@example.com"
            let jwt = try await signAssertion(both, key: try TestKeys.main.get())
            #expect(try await client.form([("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", jwt)]).status == 200)
            let garbage = try await client.form([("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", "not.a.jwt")])
            #expect(garbage.json?["error_description"]?.stringValue == "invalid assertion")
        }
    }

    @Test("client credentials (form or Basic), refresh tokens, and malformed token requests")
    func otherFlows() async throws {
        try await withSalesforce(try options()) { _, client in
            let basic = Data("SWITCHBOARD_CONSUMER_KEY:switchboard-client-secret".utf8).base64EncodedString()
            let viaBasic = try await client.form([("grant_type", "client_credentials")], headers: [("Authorization", "Basic \(basic)")])
            #expect(viaBasic.status == 200)
            #expect(viaBasic.json?["token_format"]?.stringValue == "opaque")
            let wrongSecret = try await client.form([
                ("grant_type", "client_credentials"), ("client_id", "SWITCHBOARD_CONSUMER_KEY"), ("client_secret", "nope"),
            ])
            #expect(wrongSecret.status == 400 && wrongSecret.json?["error"]?.stringValue == "invalid_client")
            let wrongId = try await client.form([
                ("grant_type", "client_credentials"), ("client_id", "nope"), ("client_secret", "switchboard-client-secret"),
            ])
            #expect(wrongId.text == #"{"error":"invalid_client_id","error_description":"client identifier invalid"}"#)
            let refresh = try await client.form([
                ("grant_type", "refresh_token"), ("client_id", "SWITCHBOARD_CONSUMER_KEY"), ("refresh_token", "refresh-1"),
            ])
            #expect(refresh.status == 200 && refresh.json?["access_token"] != nil)
            let stale = try await client.form([("grant_type", "refresh_token"), ("client_id", "SWITCHBOARD_CONSUMER_KEY"), ("refresh_token", "old")])
            #expect(stale.text == #"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#)
            let unknown = try await client.form([("grant_type", "password")])
            #expect(unknown.status == 400 && unknown.json?["error"]?.stringValue == "unsupported_grant_type")
            var raw = client
            raw.token = nil
            let json = try await raw.send("POST", "/services/oauth2/token", body: #"{"grant_type":"client_credentials"}"#)
            #expect(json.status == 400 && json.json?["error"]?.stringValue == "invalid_request")
        }
    }

    @Test("expired sessions get 401 INVALID_SESSION_ID; a new token works")
    func sessionExpiry() async throws {
        var options = try options()
        options.sessionLifetime = .seconds(7200)
        try await withSalesforce(options) { simulator, client in
            #expect(try await client.api("GET", "sobjects/Case/describe").status == 200)
            simulator.expireSessions()
            let expired = try await client.api("GET", "sobjects/Case/describe")
            #expect(expired.status == 401)
            #expect(expired.text == #"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#)
            let fresh = try await client.loggedIn()
            #expect(try await fresh.api("GET", "sobjects/Case/describe").status == 200)
            // Past the session lifetime on the simulator's clock.
            simulator.advanceClock(by: .seconds(7201))
            #expect(try await fresh.api("GET", "sobjects/Case/describe").status == 401)
            var none = client
            none.token = nil
            #expect(try await none.api("GET", "limits").status == 401)
            #expect(simulator.apiCallsUsed == 2)
        }
    }
}

@Suite("Salesforce simulator: REST")
struct SalesforceSimulatorRESTTests {
    @Test("18-character Ids: the contract's vectors, generated Ids, and 15-character input")
    func ids() async throws {
        #expect(SalesforceId.normalized("001D000000IqhSL") == "001D000000IqhSLIAZ")
        #expect(SalesforceId.normalized("5007000000OFL5F") == "5007000000OFL5FAAX")
        #expect(SalesforceId.normalized("0031I0000081tbP") == "0031I0000081tbPQAQ")
        #expect(expectedChecksum("001D000000IqhSL") == "IAZ" && expectedChecksum("0031I0000081tbP") == "QAQ")
        try await withSalesforce { simulator, client in
            let created = try await client.api("POST", "sobjects/Case/", #"{"Subject":"Checkout down"}"#)
            let id = try #require(created.json?["id"]?.stringValue)
            #expect(id.count == 18 && id.hasPrefix("500"))
            #expect(String(id.suffix(3)) == expectedChecksum(String(id.prefix(15))))
            let short = try await client.api("GET", "sobjects/Case/\(id.prefix(15))")
            #expect(short.json?["Id"]?.stringValue == id)
            // The 18-character form is case-insensitive.
            #expect(try await client.api("GET", "sobjects/Case/\(id.lowercased())").json?["Id"]?.stringValue == id)
            #expect(simulator.record("Case", String(id.prefix(15)))?["Subject"]?.stringValue == "Checkout down")
            let comment = try simulator.create("CaseComment", ["ParentId": .string(String(id.prefix(15))), "CommentBody": "hi"])
            #expect(comment.hasPrefix("00a") && String(comment.suffix(3)) == expectedChecksum(String(comment.prefix(15))))
            #expect(simulator.record("CaseComment", comment)?["ParentId"]?.stringValue == id)
        }
    }

    @Test("create, get (with fields=), update and describe")
    func crud() async throws {
        try await withSalesforce { simulator, client in
            let created = try await client.api("POST", "sobjects/Case/", #"{"Subject":"Checkout down","Priority":"High","Origin":"Web"}"#)
            #expect(created.status == 201)
            let id = try #require(created.json?["id"]?.stringValue)
            #expect(created.json?["success"] == .bool(true) && created.json?["errors"] == .array([]))
            let got = try await client.api("GET", "sobjects/Case/\(id)")
            #expect(got.status == 200)
            let record = try #require(got.json)
            #expect(record["attributes"]?["type"]?.stringValue == "Case")
            #expect(record["attributes"]?["url"]?.stringValue == "/services/data/v64.0/sobjects/Case/\(id)")
            #expect(record["Status"]?.stringValue == "New" && record["IsClosed"] == .bool(false))
            #expect(record["CaseNumber"]?.stringValue?.count == 8)
            #expect(record["OwnerId"]?.stringValue == simulator.integrationUserId)
            #expect(record["PagerDuty_Incident__c"] == .null)
            let created1 = try #require(record["CreatedDate"]?.stringValue)
            #expect(created1.hasSuffix("+0000") && created1.count == 28)
            let some = try await client.api("GET", "sobjects/Case/\(id)?fields=Subject,Status")
            #expect(some.json?.objectValue?.keys == ["attributes", "Subject", "Status", "Id"])
            let updated = try await client.api("PATCH", "sobjects/Case/\(id)", #"{"Status":"Closed","PagerDuty_Incident__c":"Q1"}"#)
            #expect(updated.status == 204 && updated.text.isEmpty)
            let after = try #require(simulator.record("Case", id))
            #expect(after["IsClosed"] == .bool(true) && after["ClosedDate"] != .null)
            #expect((after["SystemModstamp"]?.stringValue ?? "") > (record["SystemModstamp"]?.stringValue ?? "~"))
            let describe = try await client.api("GET", "sobjects/Case/describe")
            let fields = try #require(describe.json?["fields"]?.arrayValue)
            let status = try #require(fields.first { $0["name"]?.stringValue == "Status" })
            #expect(status["type"]?.stringValue == "picklist")
            #expect(status["picklistValues"]?.arrayValue?.compactMap { $0["value"]?.stringValue } == ["New", "Working", "Escalated", "Closed"])
            #expect(describe.json?["keyPrefix"]?.stringValue == "500")
            let comment = try await client.api("GET", "sobjects/CaseComment/describe")
            let required = (comment.json?["fields"]?.arrayValue ?? []).filter {
                $0["createable"] == .bool(true) && $0["nillable"] == .bool(false) && $0["defaultedOnCreate"] == .bool(false)
            }.compactMap { $0["name"]?.stringValue }
            #expect(required == ["ParentId"])
            let global = try await client.api("GET", "sobjects")
            let names = Set((global.json?["sobjects"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue })
            #expect(
                names.isSuperset(of: ["Case", "CaseComment", "FeedItem", "Incident", "Opportunity", "Account", "Contact", "User", "Escalation__c"]))
            let versions = try await client.send("GET", "/services/data/")
            #expect(versions.json?.arrayValue?.compactMap { $0["version"]?.stringValue } == ["62.0", "63.0", "64.0"])
        }
    }

    @Test("errors come as a JSON array with Salesforce's codes")
    func errors() async throws {
        try await withSalesforce { _, client in
            func error(_ answer: SalesforceClient.Answer) -> (Int, String?, [String]?) {
                let first = answer.json?.arrayValue?.first
                return (answer.status, first?["errorCode"]?.stringValue, first?["fields"]?.arrayValue?.compactMap(\.stringValue))
            }
            let unknownField = try await client.api("POST", "sobjects/Case/", #"{"Nope__c":"x"}"#)
            #expect(unknownField.text == #"[{"message":"No such column 'Nope__c' on sobject of type Case","errorCode":"INVALID_FIELD"}]"#)
            #expect(
                error(try await client.api("POST", "sobjects/CaseComment/", #"{"CommentBody":"x"}"#)) == (400, "REQUIRED_FIELD_MISSING", ["ParentId"])
            )
            #expect(error(try await client.api("POST", "sobjects/FeedItem/", #"{}"#)) == (400, "REQUIRED_FIELD_MISSING", ["ParentId", "Body"]))
            #expect(
                error(try await client.api("POST", "sobjects/Opportunity/", #"{"Name":"Deal"}"#)) == (
                    400, "REQUIRED_FIELD_MISSING", ["StageName", "CloseDate"]
                ))
            #expect(
                error(try await client.api("POST", "sobjects/Case/", #"{"Status":"Bogus"}"#)) == (
                    400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["Status"]
                ))
            #expect(
                error(try await client.api("POST", "sobjects/Case/", #"{"CaseNumber":"1"}"#)) == (
                    400, "INVALID_FIELD_FOR_INSERT_UPDATE", ["CaseNumber"]
                ))
            let closed = try await client.api("POST", "sobjects/Case/", #"{"Status":"Closed"}"#)
            #expect(closed.text == #"[{"message":"Closed cases need a Subject","errorCode":"FIELD_CUSTOM_VALIDATION_EXCEPTION","fields":[]}]"#)
            let caseId = try #require(try await client.api("POST", "sobjects/Case/", #"{"Subject":"s"}"#).json?["id"]?.stringValue)
            // 4,000 bytes, not characters: 1,334 three-byte characters are too many.
            let long = String(repeating: "€", count: 1334)
            #expect(
                error(try await client.api("POST", "sobjects/CaseComment/", #"{"ParentId":"\#(caseId)","CommentBody":"\#(long)"}"#)) == (
                    400, "STRING_TOO_LONG", ["CommentBody"]
                ))
            #expect(
                try await client.api(
                    "POST", "sobjects/CaseComment/", #"{"ParentId":"\#(caseId)","CommentBody":"\#(String(repeating: "€", count: 1333))"}"#
                ).status == 201)
            #expect(error(try await client.api("POST", "sobjects/Nope/", "{}")) == (404, "NOT_FOUND", nil))
            #expect(error(try await client.api("GET", "sobjects/Case/500Dn0000099999")) == (404, "NOT_FOUND", nil))
            #expect(error(try await client.api("GET", "sobjects/Case/xyz")).1 == "MALFORMED_ID")
            #expect(error(try await client.api("PATCH", "sobjects/Case/\(caseId)", "{not json")) == (400, "JSON_PARSER_ERROR", nil))
            #expect(
                error(try await client.api("PATCH", "sobjects/Case/\(caseId)", #"{"Status":"Closed","Subject":""}"#)).1
                    == "FIELD_CUSTOM_VALIDATION_EXCEPTION")
            var old = client
            old.version = "40.0"
            #expect(error(try await old.api("GET", "limits")) == (404, "NOT_FOUND", nil))
        }
    }

    @Test("sObject Collections: SaveResults with statusCode, all-or-none rollback, the 200-record limit")
    func collections() async throws {
        try await withSalesforce { simulator, client in
            let mixed =
                #"{"allOrNone":false,"records":[{"attributes":{"type":"Case"},"Subject":"a"},{"attributes":{"type":"CaseComment"},"CommentBody":"x"},{"attributes":{"type":"Case"},"Subject":"b"}]}"#
            let partial = try await client.api("POST", "composite/sobjects", mixed)
            #expect(partial.status == 200)
            let results = try #require(partial.json?.arrayValue)
            #expect(results.map { $0["success"] } == [.bool(true), .bool(false), .bool(true)])
            #expect(results[1]["errors"]?.arrayValue?.first?["statusCode"]?.stringValue == "REQUIRED_FIELD_MISSING")
            #expect(results[1]["errors"]?.arrayValue?.first?["errorCode"] == nil)
            #expect(results[1]["errors"]?.arrayValue?.first?["fields"] == .array(["ParentId"]))
            #expect(simulator.records("Case").count == 2)
            let strict = try await client.api("POST", "composite/sobjects", mixed.replacingOccurrences(of: "false", with: "true"))
            let rolled = try #require(strict.json?.arrayValue)
            #expect(rolled[0]["errors"]?.arrayValue?.first?["statusCode"]?.stringValue == "ALL_OR_NONE_OPERATION_ROLLED_BACK")
            #expect(rolled[0]["id"] == nil)
            #expect(simulator.records("Case").count == 2)
            let ids = results.compactMap { $0["id"]?.stringValue }
            let patch = try await client.api(
                "PATCH", "composite/sobjects",
                #"{"allOrNone":false,"records":[{"attributes":{"type":"Case"},"id":"\#(ids[0])","Priority":"Low"},{"attributes":{"type":"Case"},"Priority":"Low"}]}"#
            )
            let patched = try #require(patch.json?.arrayValue)
            #expect(patched[0]["success"] == .bool(true) && patched[0]["id"]?.stringValue == ids[0])
            #expect(patched[1]["errors"]?.arrayValue?.first?["statusCode"]?.stringValue == "MISSING_ARGUMENT")
            #expect(simulator.record("Case", ids[0])?["Priority"]?.stringValue == "Low")
            let many = (0..<201).map { _ in #"{"attributes":{"type":"Case"},"Subject":"x"}"# }.joined(separator: ",")
            let tooMany = try await client.api("POST", "composite/sobjects", #"{"records":[\#(many)]}"#)
            #expect(tooMany.status == 400 && tooMany.json?.arrayValue?.first?["errorCode"]?.stringValue == "EXCEEDED_ID_LIMIT")
            #expect(simulator.apiCallsUsed == 4)
        }
    }

    @Test("Composite: 25 subrequests with references in one call; 26 refused; allOrNone rolls back")
    func composite() async throws {
        try await withSalesforce { simulator, client in
            var subs = [#"{"method":"POST","url":"/services/data/v64.0/sobjects/Case","referenceId":"NewCase","body":{"Subject":"From composite"}}"#]
            for i in 1..<24 {
                subs.append(
                    #"{"method":"POST","url":"/services/data/v64.0/sobjects/CaseComment","referenceId":"C\#(i)","body":{"ParentId":"@{NewCase.id}","CommentBody":"n\#(i)"}}"#
                )
            }
            subs.append(#"{"method":"GET","url":"/services/data/v64.0/sobjects/Case/@{NewCase.id}?fields=Subject","referenceId":"Read"}"#)
            let answer = try await client.api("POST", "composite", #"{"allOrNone":true,"compositeRequest":[\#(subs.joined(separator: ","))]}"#)
            #expect(answer.status == 200)
            let items = try #require(answer.json?["compositeResponse"]?.arrayValue)
            #expect(items.count == 25)
            #expect(items.allSatisfy { ($0["httpStatusCode"].flatMap { if case .number(let n) = $0 { Int(n) } else { nil } } ?? 0) < 300 })
            #expect(items.last?["body"]?["Subject"]?.stringValue == "From composite")
            #expect(items.first?["httpHeaders"]?["Location"]?.stringValue?.hasPrefix("/services/data/v64.0/sobjects/Case/") == true)
            #expect(simulator.records("CaseComment").count == 23)
            #expect(simulator.apiCallsUsed == 1)
            let twentyFive = (0..<25).map { #"{"method":"GET","url":"/services/data/v64.0/limits","referenceId":"L\#($0)"}"# }.joined(separator: ",")
            #expect(try await client.api("POST", "composite", #"{"compositeRequest":[\#(twentyFive)]}"#).status == 200)
            let twentySix = twentyFive + #",{"method":"GET","url":"/services/data/v64.0/limits","referenceId":"L25"}"#
            let refused = try await client.api("POST", "composite", #"{"compositeRequest":[\#(twentySix)]}"#)
            #expect(refused.status == 400 && refused.json?.arrayValue != nil)
            let failing =
                #"{"allOrNone":true,"compositeRequest":[{"method":"POST","url":"/services/data/v64.0/sobjects/Case","referenceId":"A","body":{"Subject":"kept?"}},{"method":"POST","url":"/services/data/v64.0/sobjects/CaseComment","referenceId":"B","body":{"CommentBody":"no parent"}}]}"#
            let rolled = try #require(try await client.api("POST", "composite", failing).json?["compositeResponse"]?.arrayValue)
            #expect(rolled[0]["httpStatusCode"] == .number(400))
            #expect(rolled[0]["body"]?.arrayValue?.first?["errorCode"]?.stringValue == "PROCESSING_HALTED")
            #expect(rolled[1]["body"]?.arrayValue?.first?["errorCode"]?.stringValue == "REQUIRED_FIELD_MISSING")
            #expect(simulator.records("Case").count == 1)
        }
    }

    @Test("SOQL: filters, ordering, paging with nextRecordsUrl (one call per page) and MALFORMED_QUERY")
    func soql() async throws {
        try await withSalesforce { simulator, client in
            for batch in 0..<3 {
                let records = (0..<150).map { i in
                    #"{"attributes":{"type":"Case"},"Subject":"case \#(batch * 150 + i)","Priority":"\#(i % 2 == 0 ? "High" : "Low")"}"#
                }
                #expect(try await client.api("POST", "composite/sobjects", #"{"records":[\#(records.joined(separator: ","))]}"#).status == 200)
            }
            let before = simulator.apiCallsUsed
            let q = "SELECT Id, Subject, SystemModstamp FROM Case WHERE SystemModstamp > 2020-01-01T00:00:00Z ORDER BY SystemModstamp ASC"
            let encoded = q.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? q
            let first = try await client.api("GET", "query?q=\(encoded)", headers: [("Sforce-Query-Options", "batchSize=200")])
            #expect(first.json?["totalSize"] == .number(450) && first.json?["done"] == .bool(false))
            #expect(first.json?["records"]?.arrayValue?.count == 200)
            let next = try #require(first.json?["nextRecordsUrl"]?.stringValue)
            #expect(next.hasPrefix("/services/data/v64.0/query/01g") && next.hasSuffix("-200"))
            var seen = first.json?["records"]?.arrayValue ?? []
            var url: String? = next
            while let u = url {
                let page = try await client.send("GET", u)
                seen += page.json?["records"]?.arrayValue ?? []
                url = page.json?["nextRecordsUrl"]?.stringValue
                if url == nil { #expect(page.json?["done"] == .bool(true)) }
            }
            #expect(seen.count == 450)
            let stamps = seen.compactMap { $0["SystemModstamp"]?.stringValue }
            #expect(Set(stamps).count == 450 && stamps == stamps.sorted())
            #expect(simulator.apiCallsUsed - before == 3)
            let third = try #require(seen[2]["Id"]?.stringValue)
            let cut = stamps[99].replacingOccurrences(of: "+0000", with: "Z")
            let filtered = try await client.api(
                "GET",
                "query?q=" + "SELECT Id FROM Case WHERE Priority = 'high' AND SystemModstamp > \(cut) AND Subject != null LIMIT 10"
                    .addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
            #expect(filtered.json?["totalSize"] == .number(10) && filtered.json?["done"] == .bool(true))
            let byIds = try await client.api(
                "GET",
                "query?q=" + "SELECT Subject, Owner.Email FROM Case WHERE Id IN ('\(third.prefix(15))','500Dn0000099999') ORDER BY Subject DESC"
                    .addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
            #expect(byIds.json?["records"]?.arrayValue?.first?["Subject"]?.stringValue == "case 2")
            #expect(byIds.json?["records"]?.arrayValue?.first?["Owner"]?["Email"]?.stringValue == "integration@example.com")
            let count = try await client.api("GET", "query?q=SELECT+COUNT()+FROM+Case+WHERE+IsClosed+=+false")
            #expect(count.json?["totalSize"] == .number(450))
            for bad in [
                "SELEC Id FROM Case", "SELECT Id FROM Case WHERE", "SELECT Id FROM Case GROUP BY Id", "SELECT Id FROM Case WHERE CreatedDate > TODAY",
            ] {
                let answer = try await client.api("GET", "query?q=" + bad.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
                #expect(answer.status == 400 && answer.json?.arrayValue?.first?["errorCode"]?.stringValue == "MALFORMED_QUERY", "\(bad)")
            }
            let noColumn = try await client.api("GET", "query?q=SELECT+Nope+FROM+Case")
            #expect(noColumn.json?.arrayValue?.first?["errorCode"]?.stringValue == "INVALID_FIELD")
            let quoted = try await client.api("GET", "query?q=SELECT+Id+FROM+Case+WHERE+CreatedDate+>+'2020-01-01T00:00:00Z'")
            #expect(quoted.json?.arrayValue?.first?["errorCode"]?.stringValue == "INVALID_QUERY_FILTER_OPERATOR")
        }
    }

    @Test("API usage: Sforce-Limit-Info on every response, /limits, REQUEST_LIMIT_EXCEEDED past the allocation")
    func limits() async throws {
        var options = SalesforceSimulator.Options()
        options.apiAllocation = 3
        try await withSalesforce(options) { simulator, client in
            _ = try await client.send("GET", "/services/data/")
            let first = try await client.api("GET", "limits")
            #expect(first.header("Sforce-Limit-Info") == "api-usage=1/3")
            #expect(first.json?["DailyApiRequests"]?["Max"] == .number(3) && first.json?["DailyApiRequests"]?["Remaining"] == .number(2))
            let error = try await client.api("GET", "sobjects/Nope/describe")
            #expect(error.status == 404 && error.header("Sforce-Limit-Info") == "api-usage=2/3")
            _ = try await client.api("GET", "sobjects")
            let over = try await client.api("GET", "limits")
            #expect(over.status == 403)
            #expect(over.text == #"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#)
            #expect(over.header("Sforce-Limit-Info") == "api-usage=3/3")
            #expect(simulator.apiCallsUsed == 3)
            simulator.setAPIAllocation(10)
            #expect(try await client.api("GET", "limits").header("Sforce-Limit-Info") == "api-usage=4/10")
            simulator.resetAPIUsage()
            #expect(simulator.apiCallsUsed == 0)
            // Test controls act like a person in the UI: never counted.
            try simulator.create("Case", ["Subject": "from the UI"])
            #expect(simulator.apiCallsUsed == 0)
            #expect(simulator.requests.contains { $0.path.hasPrefix("/services/data/v64.0/limits") && $0.status == 403 })
        }
    }
}
