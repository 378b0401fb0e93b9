import Foundation
import HTTPTypes
import Hummingbird
import JWTKit
import Logging
import NIOCore
import Synchronization
import SwitchboardCore
import SwitchboardPipeline
@testable import SwitchboardSalesforce
import SwitchboardSimulators
import Testing

// MARK: - A tiny fake Salesforce for these tests

/// Salesforce's real bodies (shared/reference/salesforce), beside the repository; absent in a fresh clone.
enum Reference {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/reference/salesforce").path
    static var isAvailable: Bool { FileManager.default.fileExists(atPath: directory + "/CONTRACT.md") }
    static let skipReason: Comment =
        "SKIPPED: ../shared/reference/salesforce is absent (a fresh clone); these tests answer with Salesforce's real bodies read from it"

    static func text(_ name: String) throws -> String {
        try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
    }

    static func json(_ name: String) throws -> JSONValue {
        try JSONParser.parseValue(try text(name))
    }

    /// The token endpoint's real success body, pointed at `instanceURL` (and a given access token).
    static func token(instanceURL: String, accessToken: String, refreshToken: String? = nil) throws -> String {
        guard case .object(var o) = try json("oauth_token_success.restforce.json") else { throw FakeError("token fixture is not an object") }
        o["instance_url"] = .string(instanceURL)
        o["access_token"] = .string(accessToken)
        if let refreshToken { o["refresh_token"] = .string(refreshToken) }
        return JSONValue.object(o).serialized()
    }
}

struct FakeError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A request as the fake saw it.
struct FakeRequest: Sendable {
    var method: String
    var path: String
    var query: [String: String]
    var headers: [String: String]
    var body: String

    var json: JSONValue? { try? JSONParser.parseValue(body) }
    var form: [String: String] {
        var out: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0) }
            if kv.count == 2 { out[kv[0]] = kv[1] }
        }
        return out
    }
    var bearer: String? { headers["authorization"].map { String($0.dropFirst("Bearer ".count)) } }
}

/// What the fake answers.
struct FakeReply: Sendable {
    var status: Int
    var body: String
    var headers: [(String, String)] = []

    static func json(_ status: Int, _ body: String, headers: [(String, String)] = []) -> FakeReply {
        FakeReply(status: status, body: body, headers: headers)
    }
    static func fixture(_ status: Int, _ name: String, headers: [(String, String)] = []) -> FakeReply {
        FakeReply(status: status, body: (try? Reference.text(name)) ?? "", headers: headers)
    }
    static let noContent = FakeReply(status: 204, body: "")
}

/// A Hummingbird server on loopback whose every request goes to `handler`; it counts and records requests.
final class FakeSalesforce: Sendable {
    typealias Handler = @Sendable (FakeRequest) async -> FakeReply
    private let recorded = Mutex<[FakeRequest]>([])
    private let inFlight = Mutex<(now: Int, peak: Int)>((0, 0))
    private let handler: Handler
    private let server = Mutex<LoopbackServer?>(nil)
    private let portBox = Mutex(0)

    var baseURL: String { "http://127.0.0.1:\(portBox.withLock { $0 })" }
    var requests: [FakeRequest] { recorded.withLock { $0 } }
    var peakConcurrency: Int { inFlight.withLock { $0.peak } }
    func requests(_ method: String, _ pathSuffix: String) -> [FakeRequest] {
        requests.filter { $0.method == method && $0.path.hasSuffix(pathSuffix) }
    }
    func reset() { recorded.withLock { $0 = [] } }

    private init(handler: @escaping Handler) { self.handler = handler }

    static func start(_ handler: @escaping Handler) async throws -> FakeSalesforce {
        let fake = FakeSalesforce(handler: handler)
        let router = Router()
        router.add(middleware: CatchAll(fake: fake))
        var logger = Logger(label: "fake-salesforce")
        logger.logLevel = .critical
        let loopback = try await LoopbackServer.start(router: router, logger: logger)
        fake.portBox.withLock { $0 = loopback.port }
        fake.server.withLock { $0 = loopback }
        return fake
    }

    func stop() async { await server.withLock { $0 }?.stop() }

    fileprivate func answer(_ request: FakeRequest) async -> FakeReply {
        recorded.withLock { $0.append(request) }
        inFlight.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
        defer { inFlight.withLock { $0.now -= 1 } }
        return await handler(request)
    }

    private struct CatchAll: RouterMiddleware {
        typealias Context = BasicRequestContext
        let fake: FakeSalesforce

        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            let bytes = try await request.body.collect(upTo: 16 << 20)
            var query: [String: String] = [:]
            for pair in (request.uri.query ?? "").split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
                if kv.count == 2 { query[kv[0]] = kv[1] }
            }
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let reply = await fake.answer(
                FakeRequest(method: request.method.rawValue, path: request.uri.path, query: query, headers: headers, body: String(buffer: bytes)))
            var fields = HTTPFields()
            fields[.contentType] = "application/json"
            for (name, value) in reply.headers { if let n = HTTPField.Name(name) { fields[n] = value } }
            return Response(status: .init(code: reply.status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: reply.body)))
        }
    }
}

/// A test-only RSA key (generated for these tests; it signs nothing real).
let testPrivateKeyPEM = """
-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCQ/ry7+UymgKQJ
Bj9rxxXhST3LoK0BerNnbZlZk+avefGWw0DtatBMRXofgz9GA81xqQGtO90wsaI8
8O0qZBM7qWPsqzk08huYMEOSwg8SlYrYIr1mY1dAfXlWC/VhSVIt/1Co7XPr+mKz
Kh96JcD47eyY22tCpo8+6/R1lKIYQei4lGJM/PVQA3JqcdfSRJdqsAmLpqSQ2j+j
IyoKzbRKkdx3ec5k9CckjEq9xDvWeAySn92JcNkb2ltS6gAMoIzaoBcf15PQErl3
TLQQ9M4lHasgj0REBP5r2WFKDHqlskxm6ba0rMYBvQVd2Ym15WMI2e3ippXXoVO9
LhcdZFITAgMBAAECggEAAcfDwBhRpIVVpK/sc6Gh3aT9R45Lmx++d/y+OMp0A/le
o4f2a9Pd030fTXRaZwnHg7R11+j+KfzMYRL7C1Dn2yaVAQQ7M0pTvc/xGUPqIan8
M41kDClLgKtQI/1vZmHn/en+iHLd82q2iO+kxYAU+TMZ4bVnNEEz5t7InvCTxIt2
sjQoQhIGoTnFZS23HXq0iNcQp6uyZ6hOV4hlm23ai9Unw5p/NczOhC096iyvvYyo
sNDU2NPXD3hq5a1JHfvmGFVOyModFyRNHTS0J5s8wRFfr6Sx6CpqQAj+5ZUc9USa
GguAJdTeFLbyCS/z8UK4kd7WroVl7HS0nZGrjwRJEQKBgQDIbMyi3com/JlPPnpV
+yUYXOb9Uib9BHswVB3RjFmHCnAP7Kb0uBfHMPIjnl5IP8E88WOHvzHtxcwrqSYO
0Y/CFnsOxYag9bKEti5nhUezbZ0c62wUfUvgqIye0NO5ila92A25ku3JXnSPOHb7
qJ57fV1imkDxv3au5Uv0kK33sQKBgQC5MzxCbpE6J+TdnM32FkwgLDsJIJq0EL39
g0cG6rnrPiCXVQIexjXkRHv/KQFis1B0nt/dxbNb61x9EPDVHhxQqEaGtx2b05ou
/nLGe2PyYEsn7Eqeb0sybOmm1bsksBi6KKzHzYgrP+wfsw1hu16w5IdYC3MVbWJ0
BK5FU1bbAwKBgGYan0mdab3g041+S75/uk8mDPsingAqB0QApkw5juZv19UU/50O
J/bvJXwl0uxFpoEQjF78dUgnizL28g98jRsYbsqAsGxRnwdi9FMCoBt1jSPNf3sU
tdIWq8TAqAwOwM/oQF24z3DVsNXBs0PTjCFnJWr1IH7HxoOlBsPp7OaRAoGAOFHm
b2VkcMUVCnfXApFBUT9iLKJnqX616FR10xqqs2lPS/YkEOvCE8rn0m7L5xIU04JF
HhIzOy7WD4qJUqY3gifKWslxDaRJ7SSgDtATUvAJqvhmsMuzmIAahgvVP5D11Bbu
hExyroRf8DvpQ+FRKIY2yoWg19FN8W5C+P4hGbUCgYBxx/6rg3mXguSquh1DDfVQ
Jdt/TUGvoTi6DSo+y5nCG+mbiu0FSiCDjl5vhXIbD9+JOyCLSShsr5gSCPXFhbwb
vdOeZ7404V8FNE+6mNId6UHOFONr7MU7xsnIjx4d/N4gVcF4ALC1s0ztKC//jMf5
MLywWmB9JiUKvIhMd4ItSQ==
-----END PRIVATE KEY-----
"""

/// A thread-safe count.
final class Counter: Sendable {
    private let value = Mutex(0)
    var count: Int { value.withLock { $0 } }
    func next() -> Int { value.withLock { v in v += 1; return v } }
}

/// A session provider that hands out a fixed session and counts invalidations, for tests of the client alone.
actor StaticSessions: SalesforceSessionProvider {
    var current: SalesforceSession
    private(set) var invalidations = 0
    init(_ session: SalesforceSession) { current = session }
    func session() async throws(SalesforceError) -> SalesforceSession { current }
    func invalidate(_ session: SalesforceSession) async { invalidations += 1 }
}

/// A token endpoint + REST API on one fake: tokens T1, T2, … in order; `rest` answers the API calls.
func fakeOrg(
    tokenDelay: Duration = .zero, rest: @escaping @Sendable (FakeRequest, String) async -> FakeReply
) async throws -> (fake: FakeSalesforce, tokens: Counter) {
    let tokens = Counter()
    let box = Mutex<String>("")
    let fake = try await FakeSalesforce.start { request in
        if request.path == "/services/oauth2/token" {
            let n = tokens.next()
            if tokenDelay > .zero { try? await Task.sleep(for: tokenDelay) }
            return .json(200, (try? Reference.token(instanceURL: box.withLock { $0 }, accessToken: "T\(n)")) ?? "{}")
        }
        return await rest(request, box.withLock { $0 })
    }
    box.withLock { $0 = fake.baseURL }
    return (fake, tokens)
}

func quietLogger() -> Logger {
    var l = Logger(label: "test")
    l.logLevel = .critical
    return l
}

/// A JWT bearer provider against `fake`.
func jwtProvider(_ fake: FakeSalesforce, onRotated: (@Sendable (String) async -> Void)? = nil) -> SalesforceTokenProvider {
    SalesforceTokenProvider(
        flow: .jwtBearer(consumerKey: "3MVG9-consumer", username: "integration@example.com", privateKeyPEM: testPrivateKeyPEM), loginURL: fake.baseURL,
        logger: quietLogger(), onRefreshTokenRotated: onRotated)
}

/// The claims the test checks the assertion against.
struct AssertionClaims: JWTPayload {
    var iss: IssuerClaim
    var sub: SubjectClaim
    var aud: AudienceClaim
    var exp: ExpirationClaim
    func verify(using algorithm: some JWTAlgorithm) async throws { try exp.verifyNotExpired() }
}

func base64URLDecode(_ s: Substring) -> Data? {
    var b = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while b.count % 4 != 0 { b += "=" }
    return Data(base64Encoded: b)
}

// MARK: - Tests

@Suite("Salesforce OAuth")
struct SalesforceClientAuthTests {
    @Test("The JWT bearer assertion has iss, sub, aud, exp ≤ 3 min and an RS256 signature that verifies with the public key", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func jwtAssertion() async throws {
        let seen = Mutex<[String: String]>([:])
        let fake = try await FakeSalesforce.start { request in
            seen.withLock { $0 = request.form }
            return .json(200, (try? Reference.token(instanceURL: "https://acme.my.salesforce.com", accessToken: "T1")) ?? "{}")
        }
        defer { Task { await fake.stop() } }
        let provider = jwtProvider(fake)
        let session = try await provider.session()
        #expect(session.accessToken == "T1")
        #expect(session.instanceURL == "https://acme.my.salesforce.com")
        // The fixture's id is .../id/00Dx0000000BV7z/005x00000012Q9P: 18-character forms.
        #expect(session.orgId == SalesforceId.normalized("00Dx0000000BV7z"))
        #expect(session.orgId?.count == 18)
        #expect(session.userId == SalesforceId.normalized("005x00000012Q9P"))

        let form = seen.withLock { $0 }
        #expect(form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer")
        let assertion = try #require(form["assertion"])
        let parts = assertion.split(separator: ".")
        #expect(parts.count == 3)
        let header = try JSONParser.parseValue(bytes: Array(try #require(base64URLDecode(parts[0]))))
        #expect(header["alg"] == "RS256")
        let claims = try JSONParser.parseValue(bytes: Array(try #require(base64URLDecode(parts[1]))))
        #expect(claims["iss"] == "3MVG9-consumer")
        #expect(claims["sub"] == "integration@example.com")
        #expect(claims["aud"] == .string(fake.baseURL), "a custom login URL is its own audience")
        guard case .number(let exp) = claims["exp"] else { Issue.record("exp is not a number"); return }
        let ahead = exp - Date().timeIntervalSince1970
        #expect(ahead > 0 && ahead <= 180)

        // The signature verifies with the public half of the key, and not with another key.
        let keys = JWTKeyCollection()
        await keys.add(rsa: try Insecure.RSA.PrivateKey(pem: testPrivateKeyPEM).publicKey, digestAlgorithm: .sha256)
        let verified = try await keys.verify(assertion, as: AssertionClaims.self)
        #expect(verified.sub.value == "integration@example.com")
        var tampered = assertion
        tampered.removeLast(4)
        tampered += "AAAA"
        await #expect(throws: (any Error).self) { _ = try await keys.verify(tampered, as: AssertionClaims.self) }
    }

    @Test("The audience: login and test hosts by name, any other login URL itself")
    func audiences() {
        #expect(SalesforceLoginURL.audience(for: "https://login.salesforce.com/") == "https://login.salesforce.com")
        #expect(SalesforceLoginURL.audience(for: "https://test.salesforce.com") == "https://test.salesforce.com")
        #expect(SalesforceLoginURL.audience(for: "https://acme.my.salesforce.com/") == "https://acme.my.salesforce.com")
        #expect(SalesforceLoginURL.audience(for: "http://127.0.0.1:8080") == "http://127.0.0.1:8080")
    }

    @Test("The session is cached; concurrent callers share one token request; invalidate renews once", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func caching() async throws {
        let (fake, tokens) = try await fakeOrg(tokenDelay: .milliseconds(50)) { _, _ in .noContent }
        defer { Task { await fake.stop() } }
        let provider = jwtProvider(fake)
        let sessions = try await withThrowingTaskGroup(of: SalesforceSession.self) { group in
            for _ in 0..<20 { group.addTask { try await provider.session() } }
            var out: [SalesforceSession] = []
            for try await s in group { out.append(s) }
            return out
        }
        #expect(Set(sessions.map(\.accessToken)) == ["T1"])
        #expect(tokens.count == 1)
        _ = try await provider.session()
        #expect(tokens.count == 1, "cached")
        let first = sessions[0]
        await provider.invalidate(first)
        await provider.invalidate(first)
        let renewed = try await provider.session()
        #expect(renewed.accessToken == "T2")
        // A late invalidate of the old session leaves the new one alone.
        await provider.invalidate(first)
        #expect(try await provider.session().accessToken == "T2")
        #expect(tokens.count == 2)
    }

    @Test("Client credentials and refresh token flows post their forms; a rotated refresh token is kept and reported", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func otherFlows() async throws {
        let forms = Mutex<[[String: String]]>([])
        let fake = try await FakeSalesforce.start { request in
            forms.withLock { $0.append(request.form) }
            let rotate = request.form["grant_type"] == "refresh_token"
            return .json(200, (try? Reference.token(instanceURL: "https://acme.my.salesforce.com", accessToken: "A", refreshToken: rotate ? "R2" : nil)) ?? "{}")
        }
        defer { Task { await fake.stop() } }
        let credentials = SalesforceTokenProvider(flow: .clientCredentials(clientId: "cid", clientSecret: "s3cret&="), loginURL: fake.baseURL, logger: quietLogger())
        _ = try await credentials.session()
        #expect(forms.withLock { $0.last } == ["grant_type": "client_credentials", "client_id": "cid", "client_secret": "s3cret&="])

        let reported = Mutex<String?>(nil)
        let refresh = SalesforceTokenProvider(
            flow: .refreshToken(clientId: "cid", clientSecret: nil, refreshToken: "R1"), loginURL: fake.baseURL, logger: quietLogger(),
            onRefreshTokenRotated: { token in reported.withLock { $0 = token } })
        let s = try await refresh.session()
        await refresh.invalidate(s)
        _ = try await refresh.session()
        let sent = forms.withLock { $0.suffix(2) }
        #expect(sent.first?["refresh_token"] == "R1")
        #expect(sent.last?["refresh_token"] == "R2", "the rotated token is used next")
        #expect(sent.first?["client_secret"] == nil)
        #expect(await refresh.rotatedRefreshToken == "R2")
        #expect(reported.withLock { $0 } == "R2")
    }

    @Test("OAuth errors become authorization errors; an unreachable token endpoint is a transport error", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func oauthErrors() async throws {
        let fake = try await FakeSalesforce.start { request in
            request.form["grant_type"] == "refresh_token"
                ? .fixture(400, "oauth_refresh_error_expired_token.restforce.json") : .fixture(400, "oauth_token_error_invalid_grant.restforce.json")
        }
        defer { Task { await fake.stop() } }
        await #expect(throws: SalesforceError.authorization(error: "invalid_grant", description: "authentication failure - Invalid Password")) {
            _ = try await jwtProvider(fake).session()
        }
        let refresh = SalesforceTokenProvider(flow: .refreshToken(clientId: "c", clientSecret: "s", refreshToken: "r"), loginURL: fake.baseURL, logger: quietLogger())
        await #expect(throws: SalesforceError.authorization(error: "invalid_grant", description: "expired access/refresh token")) {
            _ = try await refresh.session()
        }
        #expect(SalesforceSink.failure(for: .authorization(error: "invalid_grant", description: "x")) == .permanent(SalesforceError.authorization(error: "invalid_grant", description: "x").description))
        // Nothing listens on port 9 of loopback.
        let nowhere = SalesforceTokenProvider(flow: .clientCredentials(clientId: "c", clientSecret: "s"), loginURL: "http://127.0.0.1:9", timeout: .seconds(2), logger: quietLogger())
        do {
            _ = try await nowhere.session()
            Issue.record("no error")
        } catch {
            guard case .transport = error else { Issue.record("expected transport, got \(error)"); return }
            guard case .retryable = SalesforceSink.failure(for: error) else { Issue.record("a token endpoint that does not answer is retryable"); return }
        }
    }

    @Test("A provider is built from a stored connection, and refuses one that lacks its flow's settings")
    func fromConnection() async throws {
        var connection = SalesforceConnection(orgId: "00Dx0000000BV7z", loginURL: "https://test.salesforce.com", auth: .jwt, consumerKey: "ck", username: "u@example.com")
        #expect(throws: SalesforceError.self) { _ = try SalesforceTokenProvider(connection: connection) }
        connection.privateKeyPEM = testPrivateKeyPEM
        let provider = try SalesforceTokenProvider(connection: connection)
        #expect(provider.audience == "https://test.salesforce.com")
        #expect(await provider.flow == .jwtBearer(consumerKey: "ck", username: "u@example.com", privateKeyPEM: testPrivateKeyPEM))
    }
}

@Suite("Salesforce REST client")
struct SalesforceClientTests {
    @Test("A 401 INVALID_SESSION_ID renews the session once and replays; the new instance_url is used", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func renewAndReplay() async throws {
        // Server B: where the second token says the org now lives.
        let serverB = try await FakeSalesforce.start { request in
            request.bearer == "fresh-1" ? .json(201, #"{"id":"5005000000AbCdE","success":true,"errors":[]}"#) : .fixture(401, "rest_error_401_invalid_session_id.restforce.json")
        }
        defer { Task { await serverB.stop() } }
        let tokens = Counter()
        let fakeA = try await FakeSalesforce.start { request in
            if request.path == "/services/oauth2/token" {
                let n = tokens.next()
                try? await Task.sleep(for: .milliseconds(30))
                return .json(200, (try? Reference.token(instanceURL: serverB.baseURL, accessToken: "fresh-\(n)")) ?? "{}")
            }
            return .fixture(401, "rest_error_401_invalid_session_id.restforce.json")
        }
        defer { Task { await fakeA.stop() } }
        // The first session lives on A; the token endpoint (on A) answers with B as the instance.
        let sessions = StaticThenProvider(first: SalesforceSession(accessToken: "expired", instanceURL: fakeA.baseURL), next: jwtProvider(fakeA))
        let client = SalesforceClient(sessions: sessions, logger: quietLogger())
        // Two writes fail with the same expired session at once: one renewal serves both.
        async let a = client.create("Case", fields: ["Subject": "one"])
        async let b = client.create("Case", fields: ["Subject": "two"])
        let ids = try await [a, b]
        #expect(ids.allSatisfy { $0 == SalesforceId.normalized("5005000000AbCdE") })
        #expect(fakeA.requests("POST", "/sobjects/Case/").count == 2)
        #expect(serverB.requests("POST", "/sobjects/Case/").count == 2, "replayed at the new instance URL")
        #expect(tokens.count == 1, "one renewal for two 401s")
        // A session refused again after the replay is not renewed in a loop.
        let dead = SalesforceClient(sessions: StaticSessions(SalesforceSession(accessToken: "bad", instanceURL: fakeA.baseURL)), logger: quietLogger())
        await #expect(throws: SalesforceError.api(status: 401, errors: [.init(code: "INVALID_SESSION_ID", message: "Session expired or invalid")])) {
            try await dead.update("Case", id: "500000000000001", fields: [:])
        }
        #expect(fakeA.requests("PATCH", "/sobjects/Case/500000000000001").count == 2)
    }

    @Test("Headers: Bearer, Accept, Sforce-Call-Options on writes only; the API version is configurable", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func headers() async throws {
        let (fake, _) = try await fakeOrg { request, _ in
            request.method == "GET" ? .fixture(200, "rest_sobject_get_record.restforce.json") : .fixture(201, "rest_sobject_create_201.restforce.json")
        }
        defer { Task { await fake.stop() } }
        let client = SalesforceClient(
            sessions: jwtProvider(fake), configuration: .init(apiVersion: "v66.0", callOptionsClient: "sb-test"), logger: quietLogger())
        let record = try await client.get("Whizbang", id: "23foo", fields: ["Name", "Text_Label"])
        #expect(record["Name"] == "My First Whizbang")
        _ = try await client.create("Whizbang", fields: ["Name": "x"])
        let get = try #require(fake.requests("GET", "/sobjects/Whizbang/23foo").first)
        #expect(get.path == "/services/data/v66.0/sobjects/Whizbang/23foo")
        #expect(get.query["fields"] == "Name,Text_Label")
        #expect(get.headers["authorization"] == "Bearer T1")
        #expect(get.headers["accept"] == "application/json")
        #expect(get.headers["sforce-call-options"] == nil)
        let post = try #require(fake.requests("POST", "/services/data/v66.0/sobjects/Whizbang/").first)
        #expect(post.headers["sforce-call-options"] == "client=sb-test")
        #expect(post.json == .object(["Name": "x"]))
    }

    @Test("Both error formats are decoded: the REST array and the Collections statusCode", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func errorFormats() async throws {
        let (fake, _) = try await fakeOrg { request, _ in
            if request.path.hasSuffix("composite/sobjects") {
                return .json(
                    200,
                    #"[{"id":"500000000000001AAA","success":true,"errors":[]},{"success":false,"errors":[{"statusCode":"REQUIRED_FIELD_MISSING","message":"Required fields are missing: [Status]","fields":["Status"]}]}]"#)
            }
            return request.method == "PATCH" ? .fixture(400, "rest_error_400_invalid_field.restforce.json") : .fixture(404, "rest_error_404_not_found.restforce.json")
        }
        defer { Task { await fake.stop() } }
        let client = SalesforceClient(sessions: jwtProvider(fake), logger: quietLogger())
        await #expect(throws: SalesforceError.api(status: 400, errors: [.init(code: "INVALID_FIELD", message: "No such column 'foo' on sobject of type Bar")])) {
            try await client.update("Bar", id: "a00000000000001", fields: ["foo": "x"])
        }
        await #expect(throws: SalesforceError.api(status: 404, errors: [.init(code: "NOT_FOUND", message: "The requested resource does not exist")])) {
            _ = try await client.describe("Nope")
        }
        let results = try await client.createCollection(
            [CollectionRecord(object: "Case", fields: ["Subject": "a"]), CollectionRecord(object: "Case", fields: ["Subject": "b"])], allOrNone: false)
        #expect(results[0] == SaveResult(id: "500000000000001AAA", success: true))
        #expect(results[1].errors == [.init(code: "REQUIRED_FIELD_MISSING", message: "Required fields are missing: [Status]", fields: ["Status"])])
        #expect(SalesforceSink.failure(for: results[1], "create") == .permanent("Salesforce refused to create: REQUIRED_FIELD_MISSING: Required fields are missing: [Status] [Status]"))
        let post = try #require(fake.requests("POST", "composite/sobjects").first?.json)
        #expect(post["allOrNone"] == .bool(false))
        #expect(post["records"]?.arrayValue?.first == .object(["attributes": .object(["type": "Case"]), "Subject": "a"]))
    }

    @Test("Queries follow nextRecordsUrl until done; the paged variant returns one page", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func queryPaging() async throws {
        let (fake, _) = try await fakeOrg { request, _ in
            if request.path == "/services/data/v26.0/query/01gD" { return .fixture(200, "rest_query_page2_done.restforce.json") }
            if request.path.hasSuffix("/query") { return .fixture(200, "rest_query_page1_nextRecordsUrl.restforce.json") }
            return .fixture(404, "rest_error_404_not_found.restforce.json")
        }
        defer { Task { await fake.stop() } }
        let client = SalesforceClient(sessions: jwtProvider(fake), logger: quietLogger())
        let records = try await client.query("SELECT Text_Label FROM Whizbang WHERE Name = 'a b'")
        #expect(records.map { $0["Text_Label"] } == ["First Page", "Last Page"])
        #expect(fake.requests("GET", "/query").first?.query["q"] == "SELECT Text_Label FROM Whizbang WHERE Name = 'a b'")
        let page = try await client.queryPage("SELECT Id FROM Whizbang")
        #expect(page.done == false && page.nextRecordsUrl == "/services/data/v26.0/query/01gD" && page.totalSize == 2)
        #expect(fake.requests.filter { $0.path.contains("/query") }.count == 3)
    }

    @Test("Reads are retried after a 5xx; writes are not", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func readRetries() async throws {
        let failures = Mutex(1)
        let (fake, _) = try await fakeOrg { request, _ in
            if request.method == "POST" { return .json(503, #"[{"message":"busy","errorCode":"SERVER_UNAVAILABLE"}]"#) }
            let fail = failures.withLock { f -> Bool in defer { f -= 1 }; return f > 0 }
            return fail ? .json(503, "[]") : .fixture(200, "rest_query_empty.restforce.json")
        }
        defer { Task { await fake.stop() } }
        let client = SalesforceClient(sessions: jwtProvider(fake), configuration: .init(retryDelay: .milliseconds(5)), logger: quietLogger())
        #expect(try await client.query("SELECT Id FROM Case").isEmpty)
        #expect(fake.requests("GET", "/query").count == 2)
        do {
            _ = try await client.create("Case", fields: [:])
            Issue.record("no error")
        } catch {
            guard case .transport = error else { Issue.record("\(error)"); return }
        }
        #expect(fake.requests("POST", "/sobjects/Case/").count == 1)
    }

    @Test("Sforce-Limit-Info is read; low-priority work stops at the reserve without a call; 403 REQUEST_LIMIT_EXCEEDED is retryable and holds calls", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func budget() async throws {
        let used = Mutex(80)
        let refuse = Mutex(false)
        let (fake, _) = try await fakeOrg { request, _ in
            if refuse.withLock({ $0 }) {
                return .json(403, #"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#, headers: [("Sforce-Limit-Info", "api-usage=100/100")])
            }
            let u = used.withLock { $0 }
            return .json(201, #"{"id":"500000000000001AAA","success":true,"errors":[]}"#, headers: [("Sforce-Limit-Info", "api-usage=\(u)/100; api-bursts=1/10")])
        }
        defer { Task { await fake.stop() } }
        let clock = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        let budget = APIBudget(reserve: .fraction(0.1), limitRetryAfter: 60, now: { clock.withLock { $0 } })
        let client = SalesforceClient(sessions: jwtProvider(fake), budget: budget, logger: quietLogger())
        _ = try await client.create("CaseComment", fields: [:], priority: .low)
        var snapshot = budget.snapshot
        #expect(snapshot.used == 80 && snapshot.max == 100 && snapshot.remaining == 20 && snapshot.reserve == 10)
        #expect(snapshot.updatedAt == clock.withLock { $0 })
        // 91 used: 9 left ≤ the 10 reserved.
        used.withLock { $0 = 91 }
        _ = try await client.create("Case", fields: [:])
        let before = fake.requests.count
        await #expect(throws: SalesforceError.limitExceeded(message: "9 of 100 daily API calls remain and 10 are kept for other integrations; low-priority work waits", retryAfterSeconds: 60)) {
            _ = try await client.create("CaseComment", fields: [:], priority: .low)
        }
        #expect(fake.requests.count == before, "refused without calling Salesforce")
        _ = try await client.create("Case", fields: [:], priority: .normal)
        #expect(fake.requests.count == before + 1, "field updates and creates still go")

        // The hard limit: retryable, and every call waits until the retry time.
        refuse.withLock { $0 = true }
        do {
            _ = try await client.create("Case", fields: [:])
            Issue.record("no error")
        } catch {
            #expect(error == .limitExceeded(message: "TotalRequests Limit exceeded.", retryAfterSeconds: 60))
            #expect(SalesforceSink.failure(for: error) == .postponed(error.description, retryAfter: 60))
        }
        let afterRefusal = fake.requests.count
        await #expect(throws: SalesforceError.self) { _ = try await client.create("Case", fields: [:], priority: .high) }
        #expect(fake.requests.count == afterRefusal, "no call while exhausted")
        #expect(budget.snapshot.exhausted)
        // After the wait a call goes; a success with room ends the exhausted state.
        refuse.withLock { $0 = false }
        used.withLock { $0 = 50 }
        clock.withLock { $0 = $0.addingTimeInterval(61) }
        _ = try await client.create("Case", fields: [:])
        snapshot = budget.snapshot
        #expect(!snapshot.exhausted && snapshot.remaining == 50)
    }

    @Test("Describe is typed and cached; describe global and limits are decoded", .enabled(if: Reference.isAvailable, Reference.skipReason))
    func describe() async throws {
        let (fake, _) = try await fakeOrg { request, _ in
            if request.path.hasSuffix("/describe") { return .fixture(200, "rest_sobject_describe_all_field_types.restforce.json") }
            if request.path.hasSuffix("/sobjects") { return .fixture(200, "rest_describe_global.restforce.json") }
            if request.path.hasSuffix("/limits") { return .json(200, #"{"DailyApiRequests":{"Max":5000,"Remaining":4937},"DataStorageMB":{"Max":5,"Remaining":5}}"#) }
            return .fixture(404, "rest_error_404_not_found.restforce.json")
        }
        defer { Task { await fake.stop() } }
        let client = SalesforceClient(sessions: jwtProvider(fake), logger: quietLogger())
        let d = try await client.describe("Whizbang")
        #expect(d.name == "Whizbang")
        let picklist = try #require(d.field(named: "picklist_field"))
        #expect(picklist.type == "picklist" && picklist.length == 255 && picklist.updateable && picklist.activeValues.contains("one"))
        #expect(d.field(named: "OwnerId")?.referenceTo == ["Group", "User"])
        #expect(d.field(named: "CreateableButNotUpdateableField").map { $0.createable && !$0.updateable } == true)
        #expect(d.requiredOnCreate.isEmpty, "every createable field of the fixture is nillable or defaulted")
        #expect(d.schema.field(named: "Text_Field")?.length == 80)
        _ = try await client.describe("whizbang")
        #expect(fake.requests("GET", "/describe").count == 1, "cached per object")
        #expect(client.cachedDescribe("WHIZBANG") != nil)
        _ = try await client.describe("Whizbang", refresh: true)
        #expect(fake.requests("GET", "/describe").count == 2)
        let global = try await client.describeGlobal()
        #expect(global.first?.name == "Account" && global.first?.keyPrefix == "001")
        let limits = try await client.limits()
        #expect(limits["DailyApiRequests"] == OrgLimit(max: 5000, remaining: 4937))
    }

    @Test("Collections calls take at most 200 records; larger inputs are chunked with results in order; allOrNone beyond one call is refused")
    func collectionsChunking() async throws {
        let fake = try await FakeSalesforce.start { request in
            let records = request.json?["records"]?.arrayValue ?? []
            let results = records.map { r -> String in
                let subject = r["Subject"]?.stringValue ?? ""
                return #"{"id":"\#(subject)","success":true,"errors":[]}"#
            }
            return .json(200, "[" + results.joined(separator: ",") + "]")
        }
        defer { Task { await fake.stop() } }
        let client = SalesforceClient(sessions: StaticSessions(SalesforceSession(accessToken: "x", instanceURL: fake.baseURL)), logger: quietLogger())
        let records = (0..<450).map { CollectionRecord(object: "Case", fields: ["Subject": .string("s\($0)")]) }
        let results = try await client.createCollection(records, allOrNone: false)
        #expect(results.map(\.id) == (0..<450).map { "s\($0)" })
        #expect(fake.requests.map { $0.json?["records"]?.arrayValue?.count ?? 0 } == [200, 200, 50])
        await #expect(throws: SalesforceError.self) { _ = try await client.createCollection(records, allOrNone: true) }
        #expect(fake.requests.count == 3)
        // Eleven alternating types make eleven runs: split so no call holds more than ten.
        let mixed = (0..<11).map { CollectionRecord(object: $0 % 2 == 0 ? "Case" : "Task", fields: [:]) }
        #expect(SalesforceClient.collectionCalls(mixed).map(\.count) == [10, 1])
        await #expect(throws: SalesforceError.self) { _ = try await client.updateCollection([CollectionRecord(object: "Case", fields: [:])], allOrNone: false) }
    }

    @Test("Composite: at most 25 subrequests per call, split when independent, refused for allOrNone")
    func composite() async throws {
        let fake = try await FakeSalesforce.start { request in
            let subs = request.json?["compositeRequest"]?.arrayValue ?? []
            let items = subs.map { s in #"{"body":null,"httpHeaders":{},"httpStatusCode":204,"referenceId":"\#(s["referenceId"]?.stringValue ?? "")"}"# }
            return .json(200, #"{"compositeResponse":["# + items.joined(separator: ",") + "]}")
        }
        defer { Task { await fake.stop() } }
        let client = SalesforceClient(sessions: StaticSessions(SalesforceSession(accessToken: "x", instanceURL: fake.baseURL)), logger: quietLogger())
        let subs = (0..<30).map { CompositeSubrequest(method: "PATCH", url: "sobjects/Case/50000000000000\($0 % 10)", referenceId: "r\($0)", body: .object(["Status": "Closed"])) }
        let out = try await client.composite(subs, allOrNone: false)
        #expect(out.map(\.referenceId) == subs.map(\.referenceId))
        #expect(out.allSatisfy { $0.status == 204 && $0.errors.isEmpty })
        #expect(fake.requests.count == 2)
        #expect(fake.requests.first?.json?["compositeRequest"]?.arrayValue?.first?["url"] == "/services/data/v62.0/sobjects/Case/500000000000000")
        await #expect(throws: SalesforceError.self) { _ = try await client.composite(subs, allOrNone: true) }
        #expect(fake.requests.count == 2)
    }

    @Test("Date-times: .SSS+0000, Z and +00:00 parse to the same instant; SOQL literals are whole-second Z")
    func dateTimes() {
        let a = SalesforceDateTime.parse("2026-01-02T03:04:05.678+0000")
        #expect(a == SalesforceDateTime.parse("2026-01-02T03:04:05.678Z"))
        #expect(a == SalesforceDateTime.parse("2026-01-02T04:04:05.678+01:00"))
        #expect(SalesforceDateTime.parse("2026-01-02T03:04:05+00:00") != nil)
        #expect(a.map(SalesforceDateTime.soqlLiteral) == "2026-01-02T03:04:05Z")
        #expect(SalesforceDateTime.parse("2026-01-02T03:04:05") == nil)
        #expect(APIBudget.parse(limitInfo: "api-usage=10018/100000").map { [$0.used, $0.max] } == [10018, 100000])
        #expect(APIBudget.parse(limitInfo: "api-bursts=1/2; api-usage=5/10").map { [$0.used, $0.max] } == [5, 10])
        #expect(APIBudget.parse(limitInfo: "api-bursts=1/2") == nil)
    }
}

/// Hands out `first` until it is invalidated, then asks `next` (a real provider).
actor StaticThenProvider: SalesforceSessionProvider {
    var first: SalesforceSession?
    let next: SalesforceTokenProvider
    init(first: SalesforceSession, next: SalesforceTokenProvider) {
        self.first = first
        self.next = next
    }
    func session() async throws(SalesforceError) -> SalesforceSession {
        if let first { return first }
        return try await next.session()
    }
    func invalidate(_ session: SalesforceSession) async {
        if session == first { first = nil } else { await next.invalidate(session) }
    }
}
