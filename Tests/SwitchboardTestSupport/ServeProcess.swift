import Foundation
import Synchronization

/// A `switchboard` process started the way an operator would, on a free port.
public final class ServeProcess: @unchecked Sendable {
    public let process: Process
    public private(set) var port: Int = 0
    public let output: String

    /// The built executable, beside the test bundle.
    public static var binary: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir.appendingPathComponent("switchboard"), dir.deletingLastPathComponent().appendingPathComponent("switchboard")]
        where FileManager.default.isExecutableFile(atPath: candidate.path) {
            return candidate.path
        }
        return dir.appendingPathComponent("switchboard").path
    }

    /// Starts `switchboard serve` and waits until it listens.
    public init(arguments: [String], environment: [String: String] = [:], outputFile: String, timeout: TimeInterval = 30) throws {
        FileManager.default.createFile(atPath: outputFile, contents: nil)
        output = outputFile
        process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["serve", "--port", "0"] + arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SWITCHBOARD_") }
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: outputFile))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: outputFile, encoding: .utf8),
                let range = text.range(of: "switchboard listening on http://127.0.0.1:")
            {
                let digits = text[range.upperBound...].prefix { $0.isNumber }
                if let p = Int(digits) {
                    port = p
                    return
                }
            }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let text = (try? String(contentsOfFile: outputFile, encoding: .utf8)) ?? ""
        process.terminate()
        throw ServeError(message: "switchboard serve did not start: \(text.suffix(2000))")
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    public func kill9() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then wait; returns the exit status.
    @discardableResult
    public func terminate(timeout: TimeInterval = 20) -> Int32 {
        process.terminate()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { kill9() }
        process.waitUntilExit()
        return process.terminationStatus
    }

    public var log: String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
}

public struct ServeError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Runs the `switchboard` command line to completion.
public func runSwitchboard(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60) throws -> (status: Int32, output: String) {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("sb-cli-\(UUID().uuidString)").path
    FileManager.default.createFile(atPath: file, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: file) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: ServeProcess.binary)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SWITCHBOARD_") }
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    return (process.terminationStatus, (try? String(contentsOfFile: file, encoding: .utf8)) ?? "")
}
