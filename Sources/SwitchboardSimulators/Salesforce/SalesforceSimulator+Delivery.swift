import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import SwitchboardCore

/// One trigger invocation's batch, as the Apex package's Queueable posts it.
struct TriggerBatch: Sendable {
    var object: String
    var isInsert: Bool
    var recordIds: [String]
    var url: String
    /// `{"object","isInsert","old","new","orgId"}`, built when the trigger fired.
    var body: String
}

extension SalesforceSimulator {
    /// Lowercase hex HMAC-SHA256 of `timestamp + "." + body`, the package's `X-Switchboard-Signature` (after `v1=`).
    public static func triggerSignature(secret: String, timestamp: String, body: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array((timestamp + "." + body).utf8), using: SymmetricKey(data: Array(secret.utf8)))
        return mac.hexString
    }

    /// Each object's batches go out one at a time, in order, like Queueables chained per object.
    func enqueueTrigger(_ batch: TriggerBatch) {
        let continuation = state.withLock { s -> AsyncStream<TriggerBatch>.Continuation? in
            if s.stopping { return nil }
            if let existing = s.triggerQueues[batch.object] { return existing }
            let (stream, continuation) = AsyncStream.makeStream(of: TriggerBatch.self)
            s.triggerQueues[batch.object] = continuation
            Task { for await next in stream { await self.deliver(next) } }
            return continuation
        }
        continuation?.yield(batch)
    }

    private func deliver(_ batch: TriggerBatch) async {
        // The Queueable starts after the saving request has been answered.
        if options.triggerDelay > .zero { try? await Task.sleep(for: options.triggerDelay) }
        let bytes = Array(batch.body.utf8)
        for attempt in 1...max(1, options.triggerAttempts) {
            if state.withLock({ $0.stopping }) { return }
            // The signature is made when the job runs, so a retried post carries a fresh timestamp.
            let timestamp = String(Int(Date().timeIntervalSince1970))
            let signature = "v1=" + Self.triggerSignature(secret: options.triggerSecret, timestamp: timestamp, body: batch.body)
            let headers = [
                ("Content-Type", "application/json"), ("X-Switchboard-Org", options.orgId), ("X-Switchboard-Timestamp", timestamp),
                ("X-Switchboard-Signature", signature),
            ]
            var request = HTTPClientRequest(url: batch.url)
            request.method = .POST
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            request.body = .bytes(ByteBuffer(bytes: bytes))
            var status: Int?
            do {
                let response = try await http.execute(request, timeout: .seconds(30))
                _ = try? await response.body.collect(upTo: 1 << 20)
                status = Int(response.status.code)
            } catch {
                status = nil
            }
            state.withLock {
                $0.triggerPosts.append(
                    TriggerPost(
                        object: batch.object, isInsert: batch.isInsert, recordIds: batch.recordIds, url: batch.url, body: batch.body,
                        headers: headers.map { (name: $0.0, value: $0.1) }, status: status, attempt: attempt))
            }
            // 2xx is done; other 4xx mean a bad signature, a stale timestamp or a bad body: never retried.
            if let status, status != 429, !(500..<600).contains(status) { return }
            if attempt < options.triggerAttempts { try? await Task.sleep(for: options.triggerRetryDelay * attempt) }
        }
    }
}
