import AsyncHTTPClient
import Foundation
import JWTKit
import Logging
import NIOCore
import NIOHTTP1
import SwitchboardCore

/// Where an org's token endpoint lives.
public enum SalesforceLoginURL {
    /// Production and Developer Edition orgs.
    public static let production = "https://login.salesforce.com"
    /// Sandboxes.
    public static let sandbox = "https://test.salesforce.com"

    /// The JWT `aud` for a login URL: `https://login.salesforce.com` and `https://test.salesforce.com` for their
    /// hosts (whatever path was given), otherwise the login URL itself (a My Domain, an Experience Cloud site, a
    /// simulator), which Salesforce accepts and External Client Apps need.
    public static func audience(for loginURL: String) -> String {
        let base = loginURL.trimmingTrailingSlashes
        let host = URL(string: base)?.host?.lowercased()
        if host == "login.salesforce.com" { return production }
        if host == "test.salesforce.com" { return sandbox }
        return base
    }
}

/// The OAuth 2.0 flow that gets an org's tokens.
public enum SalesforceOAuthFlow: Sendable, Hashable {
    /// JWT bearer: an RS256 assertion signed with the key whose certificate is on the connected app. No secret, no
    /// refresh token; a new assertion is minted for each token.
    case jwtBearer(consumerKey: String, username: String, privateKeyPEM: String)
    /// Client credentials of a connected app whose "Run As" user acts; only on a My Domain login URL.
    case clientCredentials(clientId: String, clientSecret: String)
    /// A refresh token from an earlier authorization; `clientSecret` when the app requires one.
    case refreshToken(clientId: String, clientSecret: String?, refreshToken: String)

    var name: String {
        switch self {
        case .jwtBearer: "JWT bearer"
        case .clientCredentials: "client credentials"
        case .refreshToken: "refresh token"
        }
    }
}

/// Gets and caches an org's session: `POST <loginURL>/services/oauth2/token`, form-encoded.
///
/// One provider per org, shared by the REST client and the Change Data Capture consumer. Concurrent `session()`
/// calls share one token request; `invalidate` drops the cached session only if it is still the one that was
/// refused, so two requests failing with the same expired token cause one renewal, not two.
public actor SalesforceTokenProvider: SalesforceSessionProvider {
    /// The flow and its credentials. A refresh token that Salesforce rotated replaces the one given here.
    public private(set) var flow: SalesforceOAuthFlow
    /// `https://login.salesforce.com`, `https://test.salesforce.com`, a My Domain URL, or a simulator's URL.
    public nonisolated let loginURL: String
    /// The JWT audience (see ``SalesforceLoginURL/audience(for:)``).
    public nonisolated let audience: String
    /// The instance URL from the last token response (it may change between responses).
    public private(set) var instanceURL: String?
    /// The refresh token Salesforce handed back in place of the old one (refresh-token rotation), for the caller to
    /// persist; nil until one comes back.
    public private(set) var rotatedRefreshToken: String?

    private let http: HTTPClient
    private let timeout: TimeAmount
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let onRefreshTokenRotated: (@Sendable (String) async -> Void)?
    private var cached: SalesforceSession?
    private var inFlight: Task<Result<SalesforceSession, SalesforceError>, Never>?
    private var signer: JWTKeyCollection?
    /// How many token requests were sent (for status pages and tests).
    public private(set) var tokenRequests = 0

    /// - Parameters:
    ///   - flow: the OAuth flow and its credentials.
    ///   - loginURL: the token endpoint's base URL.
    ///   - audience: the JWT `aud`; derived from `loginURL` when nil.
    ///   - httpClient: the HTTP client (the shared one by default).
    ///   - timeout: the token request's deadline.
    ///   - onRefreshTokenRotated: called with a new refresh token when Salesforce rotates it, so it can be stored.
    ///   - now: the clock for the JWT `exp`.
    public init(
        flow: SalesforceOAuthFlow, loginURL: String = SalesforceLoginURL.production, audience: String? = nil, httpClient: HTTPClient = .shared,
        timeout: TimeAmount = .seconds(20), logger: Logger = Logger(label: "salesforce.auth"),
        onRefreshTokenRotated: (@Sendable (String) async -> Void)? = nil, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.flow = flow
        self.loginURL = loginURL.trimmingTrailingSlashes
        self.audience = audience ?? SalesforceLoginURL.audience(for: loginURL)
        self.http = httpClient
        self.timeout = timeout
        self.logger = logger
        self.onRefreshTokenRotated = onRefreshTokenRotated
        self.now = now
    }

    /// A provider for a connected org's stored settings.
    /// - Throws: `SalesforceError.authorization` when the connection lacks what its flow needs.
    public init(
        connection: SalesforceConnection, httpClient: HTTPClient = .shared, timeout: TimeAmount = .seconds(20),
        logger: Logger = Logger(label: "salesforce.auth"), onRefreshTokenRotated: (@Sendable (String) async -> Void)? = nil
    ) throws(SalesforceError) {
        let flow: SalesforceOAuthFlow
        func missing(_ what: String) -> SalesforceError {
            .authorization(error: "incomplete_settings", description: "org \(connection.orgId) has no \(what); run `switchboard salesforce connect` again")
        }
        switch connection.auth {
        case .jwt?:
            guard let key = connection.consumerKey, !key.isEmpty else { throw missing("consumer key") }
            guard let user = connection.username, !user.isEmpty else { throw missing("username") }
            guard let pem = connection.privateKeyPEM, !pem.isEmpty else { throw missing("private key") }
            flow = .jwtBearer(consumerKey: key, username: user, privateKeyPEM: pem)
        case .clientCredentials?:
            guard let key = connection.consumerKey, !key.isEmpty else { throw missing("consumer key") }
            guard let secret = connection.clientSecret, !secret.isEmpty else { throw missing("client secret") }
            flow = .clientCredentials(clientId: key, clientSecret: secret)
        case .refreshToken?:
            guard let key = connection.consumerKey, !key.isEmpty else { throw missing("consumer key") }
            guard let token = connection.refreshToken, !token.isEmpty else { throw missing("refresh token") }
            flow = .refreshToken(clientId: key, clientSecret: connection.clientSecret, refreshToken: token)
        case nil:
            throw missing("OAuth settings (it only receives trigger posts)")
        }
        self.init(
            flow: flow, loginURL: connection.loginURL, httpClient: httpClient, timeout: timeout, logger: logger, onRefreshTokenRotated: onRefreshTokenRotated)
    }

    /// The cached session, or a new one from the token endpoint.
    public func session() async throws(SalesforceError) -> SalesforceSession {
        if let cached { return cached }
        let task: Task<Result<SalesforceSession, SalesforceError>, Never>
        if let inFlight {
            task = inFlight
        } else {
            task = Task { await self.requestToken() }
            inFlight = task
        }
        let result = await task.value
        // The first waiter to resume clears the shared request; a later invalidate must not see it again.
        if inFlight == task { inFlight = nil }
        switch result {
        case .success(let session):
            if cached == nil { cached = session }
            return session
        case .failure(let error): throw error
        }
    }

    /// Drops `session` if it is still the cached one (a newer session stays).
    public func invalidate(_ session: SalesforceSession) async {
        if cached?.accessToken == session.accessToken { cached = nil }
    }

    private func requestToken() async -> Result<SalesforceSession, SalesforceError> {
        do {
            return .success(try await fetchToken())
        } catch {
            return .failure(error)
        }
    }

    private func fetchToken() async throws(SalesforceError) -> SalesforceSession {
        var form: [(String, String)]
        switch flow {
        case .jwtBearer(let consumerKey, let username, let pem):
            form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", try await assertion(consumerKey, username, pem))]
        case .clientCredentials(let id, let secret):
            form = [("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)]
        case .refreshToken(let id, let secret, let token):
            form = [("grant_type", "refresh_token"), ("refresh_token", token), ("client_id", id)]
            if let secret, !secret.isEmpty { form.append(("client_secret", secret)) }
        }
        var request = HTTPClientRequest(url: loginURL + "/services/oauth2/token")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        request.body = .bytes(ByteBuffer(string: FormEncoding.encode(form)))
        tokenRequests += 1
        let status: Int
        let bytes: ByteBuffer
        do {
            let response = try await http.execute(request, timeout: timeout)
            status = Int(response.status.code)
            bytes = try await response.body.collect(upTo: 1 << 20)
        } catch {
            throw .transport("the token endpoint \(loginURL) did not answer: \(error)")
        }
        let json = try? JSONParser.parseValue(bytes: Array(buffer: bytes))
        guard status == 200 else {
            if let error = json?["error"]?.stringValue {
                logger.warning("Salesforce refused the token request", metadata: ["flow": "\(flow.name)", "error": "\(error)"])
                throw .authorization(error: error, description: json?["error_description"]?.stringValue ?? "")
            }
            if status >= 500 || status == 429 { throw .transport("the token endpoint \(loginURL) answered \(status)") }
            throw .authorization(error: "http_\(status)", description: String(buffer: bytes).prefixed(300))
        }
        guard let json, let token = json["access_token"]?.stringValue, let instance = json["instance_url"]?.stringValue else {
            throw .malformedResponse("the token response has no access_token or instance_url")
        }
        var session = SalesforceSession(accessToken: token, instanceURL: instance.trimmingTrailingSlashes)
        if let identity = json["id"]?.stringValue {
            let parts = identity.split(separator: "/").map(String.init)
            if parts.count >= 2 {
                session.orgId = SalesforceId.normalized(parts[parts.count - 2])
                session.userId = SalesforceId.normalized(parts[parts.count - 1])
            }
        }
        if let old = instanceURL, old != session.instanceURL {
            logger.info("the org's instance URL changed", metadata: ["from": "\(old)", "to": "\(session.instanceURL)"])
        }
        instanceURL = session.instanceURL
        if case .refreshToken(let id, let secret, let oldToken) = flow, let rotated = json["refresh_token"]?.stringValue, rotated != oldToken {
            flow = .refreshToken(clientId: id, clientSecret: secret, refreshToken: rotated)
            rotatedRefreshToken = rotated
            await onRefreshTokenRotated?(rotated)
        }
        return session
    }

    /// The signed JWT bearer assertion: `iss` = consumer key, `sub` = username, `aud`, `exp` ≤ 3 minutes ahead.
    private func assertion(_ consumerKey: String, _ username: String, _ pem: String) async throws(SalesforceError) -> String {
        do {
            let keys: JWTKeyCollection
            if let signer {
                keys = signer
            } else {
                keys = JWTKeyCollection()
                await keys.add(rsa: try Insecure.RSA.PrivateKey(pem: pem), digestAlgorithm: .sha256)
                signer = keys
            }
            let claims = BearerAssertion(
                iss: IssuerClaim(value: consumerKey), sub: SubjectClaim(value: username), aud: AudienceClaim(value: [audience]),
                // Whole seconds: a NumericDate with a fraction is legal but not worth testing Salesforce's parser with.
                exp: ExpirationClaim(value: Date(timeIntervalSince1970: (now().timeIntervalSince1970 + Self.assertionLifetime).rounded(.down))))
            return try await keys.sign(claims)
        } catch {
            throw .authorization(error: "invalid_private_key", description: "cannot sign the JWT assertion with the stored key: \(error)")
        }
    }

    /// Salesforce accepts an `exp` at most three minutes ahead.
    static let assertionLifetime: TimeInterval = 170
}

/// The claims of a JWT bearer assertion.
struct BearerAssertion: JWTPayload {
    var iss: IssuerClaim
    var sub: SubjectClaim
    var aud: AudienceClaim
    var exp: ExpirationClaim

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// `application/x-www-form-urlencoded` bodies.
enum FormEncoding {
    private static let unreserved: Set<UInt8> = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8))

    static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { escape($0.0) + "=" + escape($0.1) }.joined(separator: "&")
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for byte in s.utf8 {
            if unreserved.contains(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else if byte == UInt8(ascii: " ") {
                out += "+"
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(2)
            }
        }
        return out
    }
}

extension String {
    var trimmingTrailingSlashes: String {
        var s = self
        while s.hasSuffix("/") { s.removeLast() }
        return s
    }

    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }

    func prefixed(_ n: Int) -> String { count <= n ? self : String(prefix(n)) + "…" }
}
