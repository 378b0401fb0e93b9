import AsyncHTTPClient
import Foundation
import Logging
import Synchronization
import SwitchboardCore
import SwitchboardPipeline

/// One REST client (with its token provider, describe cache, API budget and sink) per connected org, kept while the
/// org's settings are unchanged, so every part of a running server shares one session and one budget per org.
public final class SalesforceClients: Sendable {
    public let connections: SalesforceConnections
    let httpClient: HTTPClient
    let sinkConfiguration: SalesforceSinkConfiguration
    let limitWaitSeconds: Double
    let logger: Logger
    private let entries = Mutex<[String: (connection: SalesforceConnection, client: SalesforceClient, sink: SalesforceSink)]>([:])

    public init(
        connections: SalesforceConnections, httpClient: HTTPClient = .shared, sinkConfiguration: SalesforceSinkConfiguration = .init(),
        limitWaitSeconds: Double = 60, logger: Logger
    ) {
        self.limitWaitSeconds = limitWaitSeconds
        self.connections = connections
        self.httpClient = httpClient
        self.sinkConfiguration = sinkConfiguration
        self.logger = logger
    }

    /// The org's client; `orgId` nil picks the only org with API access. Nil when no such org is connected.
    public func client(orgId: String?) async throws(SalesforceError) -> (connection: SalesforceConnection, client: SalesforceClient, sink: SalesforceSink)? {
        func pick(_ connections: [SalesforceConnection]) -> SalesforceConnection? {
            let all = connections.filter(\.hasAPIAccess)
            if let orgId { return all.first { SalesforceId.same($0.orgId, orgId) } }
            return all.count == 1 ? all[0] : nil
        }
        var found = pick(await connections.all())
        if found == nil { found = pick(await connections.refreshed()) }
        guard let connection = found else { return nil }
        if let cached = entries.withLock({ $0[connection.orgId] }), cached.connection == connection { return cached }
        let provider = try SalesforceTokenProvider(connection: connection, httpClient: httpClient, logger: logger)
        let client = SalesforceClient(
            sessions: provider, configuration: .init(apiVersion: connection.apiVersion, callOptionsClient: connection.callOptionsClient),
            budget: APIBudget(limitRetryAfter: limitWaitSeconds), httpClient: httpClient, logger: logger)
        let entry = (connection, client, SalesforceSink(client: client, configuration: sinkConfiguration, logger: logger))
        entries.withLock { $0[connection.orgId] = entry }
        return entry
    }

    /// The budgets last reported by each org, for `/status`.
    public var budgets: [(orgId: String, budget: APIBudget.Snapshot)] {
        entries.withLock { e in e.values.map { ($0.connection.orgId, $0.client.budget.snapshot) }.sorted { $0.orgId < $1.orgId } }
    }

    /// The Salesforce sink of a running server: each action goes to its org's sink.
    public var sink: SalesforceOrgSink {
        SalesforceOrgSink { [self] orgId in
            do {
                return try await self.client(orgId: orgId)?.sink
            } catch {
                self.logger.error("cannot build the Salesforce client", metadata: ["org": "\(orgId ?? "-")", "error": "\(error)"])
                return nil
            }
        }
    }
}
