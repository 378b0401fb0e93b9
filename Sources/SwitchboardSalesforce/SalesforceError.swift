/// What went wrong talking to Salesforce, decoded from both of its error formats: the REST array
/// `[{"message","errorCode","fields"}]` and the Collections `{"statusCode","message","fields"}`; OAuth errors are
/// `{"error","error_description"}`.
public enum SalesforceError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The token endpoint refused (`invalid_grant`, `invalid_client`…): the connection's settings need fixing.
    case authorization(error: String, description: String)
    /// The API refused the request; `errors` as Salesforce sent them, `status` the HTTP status.
    case api(status: Int, errors: [APIErrorItem])
    /// 403 `REQUEST_LIMIT_EXCEEDED`, or our own budget floor reached: wait and try again.
    case limitExceeded(message: String, retryAfterSeconds: Double?)
    /// Required fields missing for a create, found from describe before any call.
    case missingRequiredFields(object: String, fields: [String])
    /// No answer, a timeout, or a 5xx: worth retrying.
    case transport(String)
    /// An answer we could not read.
    case malformedResponse(String)

    public struct APIErrorItem: Sendable, Hashable {
        public var code: String
        public var message: String
        public var fields: [String]

        public init(code: String, message: String, fields: [String] = []) {
            self.code = code
            self.message = message
            self.fields = fields
        }
    }

    public var description: String {
        switch self {
        case .authorization(let error, let description):
            "Salesforce refused the token request: \(error) (\(description)); check the connected app, user and key with `switchboard salesforce status`"
        case .api(let status, let errors):
            "Salesforce answered \(status): "
                + errors.map { "\($0.code): \($0.message)" + ($0.fields.isEmpty ? "" : " [\($0.fields.joined(separator: ", "))]") }
                .joined(separator: "; ")
        case .limitExceeded(let message, _): "the org's API budget is spent: \(message); work waits and resumes"
        case .missingRequiredFields(let object, let fields):
            "cannot create \(object): required field\(fields.count == 1 ? "" : "s") \(fields.joined(separator: ", ")) missing; set \(fields.count == 1 ? "it" : "them") in the rule's fields"
        case .transport(let message): "Salesforce could not be reached: \(message)"
        case .malformedResponse(let message): "Salesforce sent an answer Switchboard cannot read: \(message)"
        }
    }
}
