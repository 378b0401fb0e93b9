import Foundation
import Logging
import SwitchboardCore

/// Writes one JSON object per line to standard error: structured logs for collectors.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var o: JSONObject = [
            "time": .string(Instant(Date()).iso8601), "level": .string(event.level.rawValue), "logger": .string(label),
            "message": .string(event.message.description),
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }).sorted(by: { $0.key < $1.key }) {
            o[key] = .string("\(value)")
        }
        FileHandle.standardError.write(Data((JSONValue.object(o).serialized() + "\n").utf8))
    }
}
