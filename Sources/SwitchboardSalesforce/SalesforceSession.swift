/// An authorised session with one org: what every API call needs.
public struct SalesforceSession: Sendable, Hashable {
    public var accessToken: String
    /// Taken from every token response (it can change), e.g. `https://acme.my.salesforce.com`.
    public var instanceURL: String
    /// The org, from the token response's `id` (`…/id/<orgId>/<userId>`), 18 characters.
    public var orgId: String?
    /// The integration user the session acts as, 18 characters.
    public var userId: String?

    public init(accessToken: String, instanceURL: String, orgId: String? = nil, userId: String? = nil) {
        self.accessToken = accessToken
        self.instanceURL = instanceURL
        self.orgId = orgId
        self.userId = userId
    }
}

/// Hands out sessions and renews them. The REST client and the Change Data Capture consumer share one per org, so
/// a renewal by either serves both.
public protocol SalesforceSessionProvider: Sendable {
    /// A current session, from the cache or a new token request.
    func session() async throws(SalesforceError) -> SalesforceSession
    /// `session` was refused (401 `INVALID_SESSION_ID`): drop it so the next `session()` asks for a new token.
    func invalidate(_ session: SalesforceSession) async
}
