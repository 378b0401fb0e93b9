import Crypto
import Foundation
import JWTKit
import SwitchboardCore

/// The claims of a JWT bearer assertion. Checked by the simulator itself, so JWTKit only verifies the signature.
struct SalesforceAssertionClaims: JWTPayload {
    var iss: String?
    var sub: String?
    var prn: String?
    var aud: [String]
    var exp: Double?

    enum CodingKeys: String, CodingKey { case iss, sub, prn, aud, exp }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        iss = try? c.decodeIfPresent(String.self, forKey: .iss)
        sub = try? c.decodeIfPresent(String.self, forKey: .sub)
        prn = try? c.decodeIfPresent(String.self, forKey: .prn)
        // `aud` may be one string or a list (RFC 7519 §4.1.3).
        if let one = try? c.decodeIfPresent(String.self, forKey: .aud) {
            aud = [one]
        } else {
            aud = (try? c.decodeIfPresent([String].self, forKey: .aud)) ?? []
        }
        exp = try? c.decodeIfPresent(Double.self, forKey: .exp)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(iss, forKey: .iss)
        try c.encodeIfPresent(sub, forKey: .sub)
        try c.encodeIfPresent(prn, forKey: .prn)
        try c.encode(aud, forKey: .aud)
        try c.encodeIfPresent(exp, forKey: .exp)
    }

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

extension SalesforceSimulator {
    /// `POST /services/oauth2/token`: the JWT bearer, client credentials and refresh token flows.
    func oauth(method: String, headers: [(name: String, value: String)], body: [UInt8]) async -> SalesforceReply {
        func failure(_ error: String, _ description: String, status: Int = 400) -> SalesforceReply {
            SalesforceReply(status: status, body: .object(["error": .string(error), "error_description": .string(description)]))
        }
        guard method == "POST" else { return failure("invalid_request", "must use HTTP POST") }
        let contentType = Self.header(headers, "Content-Type")?.lowercased() ?? ""
        guard contentType.hasPrefix("application/x-www-form-urlencoded") else {
            return failure("invalid_request", "the request must be sent as application/x-www-form-urlencoded")
        }
        var form: [String: String] = [:]
        for (k, v) in Self.parseQuery(String(decoding: body, as: UTF8.self)) where form[k] == nil { form[k] = v }
        // HTTP Basic carries `client_id:client_secret` (RFC 6749 §2.3.1).
        if let auth = Self.header(headers, "Authorization"), auth.lowercased().hasPrefix("basic "),
            let decoded = Data(base64Encoded: String(auth.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let pair = String(data: decoded, encoding: .utf8), let colon = pair.firstIndex(of: ":")
        {
            form["client_id"] = form["client_id"] ?? String(pair[..<colon]).removingPercentEncoding
            form["client_secret"] = form["client_secret"] ?? String(pair[pair.index(after: colon)...]).removingPercentEncoding
        }
        switch form["grant_type"] ?? "" {
        case "urn:ietf:params:oauth:grant-type:jwt-bearer":
            guard let assertion = form["assertion"], !assertion.isEmpty else { return failure("invalid_grant", "invalid assertion") }
            switch await verifyAssertion(assertion) {
            case .success(let userId): return issueToken(userId: userId, flow: .jwt)
            case .failure(let e): return failure(e.error, e.description)
            }
        case "client_credentials":
            guard form["client_id"] == options.consumerKey else { return failure("invalid_client_id", "client identifier invalid") }
            guard form["client_secret"] == options.clientSecret else { return failure("invalid_client", "invalid client credentials") }
            return issueToken(userId: integrationUser, flow: .clientCredentials)
        case "refresh_token":
            guard form["client_id"] == options.consumerKey else { return failure("invalid_client_id", "client identifier invalid") }
            if let secret = form["client_secret"], secret != options.clientSecret { return failure("invalid_client", "invalid client credentials") }
            guard let token = form["refresh_token"], options.refreshTokens.contains(token) else {
                return failure("invalid_grant", "expired access/refresh token")
            }
            return issueToken(userId: integrationUser, flow: .refresh)
        case "":
            return failure("unsupported_grant_type", "grant type not supported")
        default:
            return failure("unsupported_grant_type", "grant type not supported")
        }
    }

    struct OAuthFailure: Error {
        var error: String
        var description: String
    }

    /// Salesforce's checks, in its order: signature and form, issuer, audience, expiry, user and approval.
    func verifyAssertion(_ assertion: String) async -> Result<String, OAuthFailure> {
        let invalid = OAuthFailure(error: "invalid_grant", description: "invalid assertion")
        guard let pem = options.certificatePublicKeyPEM else { return .failure(invalid) }
        let claims: SalesforceAssertionClaims
        do {
            let key = pem.contains("BEGIN CERTIFICATE") ? try Insecure.RSA.PublicKey(certificatePEM: pem) : try Insecure.RSA.PublicKey(pem: pem)
            let keys = JWTKeyCollection()
            await keys.add(rsa: key, digestAlgorithm: .sha256)
            claims = try await keys.verify(assertion, as: SalesforceAssertionClaims.self)
        } catch {
            return .failure(invalid)
        }
        guard claims.iss == options.consumerKey else {
            return .failure(OAuthFailure(error: "invalid_client_id", description: "client identifier invalid"))
        }
        let audiences = ["https://login.salesforce.com", "https://test.salesforce.com", baseURL].map { $0.lowercased() }
        let given = claims.aud.map { $0.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "/")) }
        guard given.contains(where: { audiences.contains($0) }) else {
            return .failure(OAuthFailure(error: "invalid_grant", description: "audience is invalid"))
        }
        // Assertions are minted with the client's real clock, so expiry is judged on wall time, not the
        // simulator's advanced clock.
        let now = Date().timeIntervalSince1970
        guard let exp = claims.exp else { return .failure(invalid) }
        guard exp > now - 5, exp <= now + 180 + 30 else {
            return .failure(OAuthFailure(error: "invalid_grant", description: "expired authorization code"))
        }
        // `prn` is the older name of the subject and wins when both are present.
        let subject = (claims.prn ?? claims.sub ?? "").lowercased()
        guard subject == options.username.lowercased() else {
            return .failure(OAuthFailure(error: "invalid_grant", description: "user hasn't approved this consumer"))
        }
        return .success(integrationUser)
    }

    enum Flow { case jwt, clientCredentials, refresh }

    func issueToken(userId: String, flow: Flow) -> SalesforceReply {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._")
        var random = SystemRandomNumberGenerator()
        let secret = String((0..<96).map { _ in alphabet[Int(random.next(upperBound: UInt64(alphabet.count)))] })
        let token = String(options.orgId.prefix(15)) + "!" + secret
        let issued = state.withLock { s -> Int64 in
            let now = Self.nowMs(s)
            s.tokens[token] = Token(userId: userId, issuedAt: now)
            return now
        }
        let id = "\(baseURL)/id/\(options.orgId)/\(userId)"
        let issuedAt = String(issued)
        // Salesforce signs `id + issued_at` with the consumer secret, so clients can check the response's origin.
        let signature = Data(
            HMAC<SHA256>.authenticationCode(for: Array((id + issuedAt).utf8), using: SymmetricKey(data: Array(options.clientSecret.utf8)))
        )
        .base64EncodedString()
        var body: JSONObject = ["access_token": .string(token)]
        if flow == .clientCredentials { body["signature"] = .string(signature) }
        body["scope"] = flow == .refresh ? "api refresh_token" : "api"
        if flow == .clientCredentials { body["token_format"] = "opaque" }
        body["instance_url"] = .string(baseURL)
        body["id"] = .string(id)
        body["token_type"] = "Bearer"
        body["issued_at"] = .string(issuedAt)
        if flow != .clientCredentials { body["signature"] = .string(signature) }
        return SalesforceReply(status: 200, body: .object(body))
    }

    /// The user behind a bearer token, or nil when missing, unknown, revoked or past its lifetime.
    func authenticate(_ headers: [(name: String, value: String)], _ s: State) -> String? {
        guard let auth = Self.header(headers, "Authorization") else { return nil }
        let parts = auth.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, ["bearer", "oauth"].contains(parts[0].lowercased()) else { return nil }
        guard let token = s.tokens[String(parts[1]).trimmingCharacters(in: .whitespaces)], !token.revoked else { return nil }
        if let lifetime = options.sessionLifetime {
            let ms = lifetime.components.seconds * 1000 + lifetime.components.attoseconds / 1_000_000_000_000_000
            if Self.nowMs(s) - token.issuedAt >= ms { return nil }
        }
        return token.userId
    }
}
